//! A bare reverse proxy for `bench/run.sh`: hyper's server and hyper-util's pooled client (the
//! same crates, settings and runtime as the shim) with nothing in between — no tower stack, no
//! routing, no metrics. It shows how much of the shim's passthrough cost is the HTTP machinery
//! itself and how much the shim's own layers add.
//!
//! ```sh
//! bare_proxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:3001
//! ```
//!
//! Prints `listening on http://IP:PORT` once bound. Under plain `cargo bench` (which passes
//! `--bench`) it prints its usage and exits.

use std::convert::Infallible;
use std::process::ExitCode;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

const USAGE: &str = "usage: bare_proxy --listen ADDR --upstream http://HOST:PORT";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut upstream) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next(),
            "--upstream" => upstream = args.next(),
            _ => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
        }
    }
    let (Some(listen), Some(upstream)) = (listen, upstream) else {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    };
    let Ok(base) = upstream.parse::<Uri>() else {
        eprintln!("bare_proxy: bad upstream {upstream:?}");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(serve(listen, base))
}

async fn serve(listen: String, base: Uri) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bare_proxy: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", listener.local_addr().expect("bound"));
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(connector);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (client, base) = (client.clone(), base.clone());
                async move { Ok::<_, Infallible>(forward(&client, &base, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(client: &Client<HttpConnector, Incoming>, base: &Uri, request: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let mut uri = base.clone().into_parts();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    parts.uri = Uri::from_parts(uri).expect("base URI with a path");
    parts.headers.remove(http::header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(|body| body.boxed_unsync()),
        Err(_) => {
            let mut response =
                Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync());
            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
            response
        }
    }
}
