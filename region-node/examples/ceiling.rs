//! The throughput ceiling for `scripts/bench-node`: an actix-web server on the same runtime
//! settings as region-node that answers every `POST /recommendations` with a fixed JSON body
//! (a real answer captured from a node), doing no other work.
//!
//!     cargo run --release -p region-node --example ceiling -- 127.0.0.1:8099 answer.json

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(body_file)) = (args.next(), args.next()) else {
        eprintln!("usage: ceiling ADDR BODY.json");
        std::process::exit(2);
    };
    let body = web::Bytes::from(std::fs::read(&body_file)?);
    println!("ceiling on {addr}, {} byte answers", body.len());
    HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/recommendations",
            web::post().to(move || {
                let body = body.clone();
                async move { HttpResponse::Ok().content_type("application/json").body(body) }
            }),
        )
    })
    .bind(addr)?
    .run()
    .await
}
