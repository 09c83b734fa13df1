//! gRPC calls over a raw HTTP/2 connection (h2), for tests and benches that
//! send what tonic's client never would: undecodable bytes, messages cut
//! short, absurd length prefixes and headers.

use std::time::Duration;

use bytes::Bytes;

/// The `(grpc-status, grpc-message)` a server answers to one call of
/// `path`: `prefix_len` is the length the 5-byte message prefix declares,
/// `body` what follows it, `end` whether the request ends there.
pub async fn raw_call(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    prefix_len: u32,
    body: &[u8],
    end: bool,
) -> (i32, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let (response, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    let mut message = vec![0u8];
    message.extend_from_slice(&prefix_len.to_be_bytes());
    message.extend_from_slice(body);
    send.send_data(Bytes::from(message), end).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(60), response)
        .await
        .expect("the server answers")
        .unwrap();
    // tonic parses grpc-status and percent-decodes grpc-message.
    let status_of = |h: &http::HeaderMap| {
        h.get("grpc-status")?;
        let s = tonic::Status::from_header_map(h)?;
        Some((s.code() as i32, s.message().to_string()))
    };
    if let Some(s) = status_of(response.headers()) {
        return s;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    status_of(&trailers).expect("a grpc-status")
}
