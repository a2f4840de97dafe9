//! testkit integration tests: the test servers themselves. Stop means unreachable, restart
//! means back on the same port.

use std::io::{Read, Write};
use std::net::TcpStream;

use testkit::RedisServer;

fn ping(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn redis_server_starts_stops_and_restarts_on_its_port() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(ping(port).expect("ping"), "+PONG\r\n");
    redis.stop();
    assert!(ping(port).is_err(), "stopped server still answers");
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(ping(port).expect("ping after restart"), "+PONG\r\n");
}

#[tokio::test]
async fn a_stopped_s3_server_is_unreachable_until_restarted() {
    let mut s3 = testkit::S3Server::start(&["georec-x"]);
    let b = s3.bucket("georec-x", "", "x");
    b.put_bytes("k", bytes::Bytes::from_static(b"v")).await.expect("put");
    s3.stop();
    let e = b.get("k").await.expect_err("down");
    assert!(e.is_unreachable(), "{e:?}");
    s3.restart();
    assert_eq!(b.get("k").await.expect("get").as_deref(), Some(&b"v"[..]));
}
