//! `GET /` and `GET /{proxy+}` of the HTTP API: the web app and `/app-config.json`. Wiring only;
//! what is answered is `vidpipe_webapp::respond`.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Read once per cold start; handlers never read the environment.
    let config = vidpipe_webapp::AppConfig::from_env()?.to_json();
    lambda_http::run(service_fn(move |req: Request| {
        let config = config.clone();
        async move {
            let if_none_match = req
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok());
            let reply = vidpipe_webapp::respond(req.uri().path(), if_none_match, &config);
            let mut response = Response::builder().status(reply.status);
            for (name, value) in &reply.headers {
                response = response.header(*name, value.as_str());
            }
            Ok::<_, Error>(response.body(Body::Binary(reply.body))?)
        }
    }))
    .await
}
