//! HTTP(S) downloads of url inputs through kiln's one client ([`crate::http`]): its trust, its
//! redirect policy (never from https to plain http, only to http(s), at most
//! [`MAX_REDIRECTS`]), and identity encoding (a content-addressed fetch must hash the bytes the
//! server stores). Url inputs carry no credentials.

use url::Url;

use super::error::{FetchError, Result};
use crate::http::{is_redirect, Agent, Body, RedirectRefused, Redirects, TlsVerify, MAX_REDIRECTS};

/// A response ready to stream: the body reader and the length the server announced.
pub(crate) struct Download {
    pub body: Box<dyn std::io::Read + Send>,
    pub content_length: Option<u64>,
}

/// GETs `url`, following redirects under kiln's policy. `input` names the input in errors.
pub(crate) fn get(url: &Url, input: &str) -> Result<Download> {
    let connect = |current: &Url, source| FetchError::Connect {
        input: input.to_string(),
        url: current.to_string(),
        source: Box::new(source),
    };
    let agent = Agent::new(TlsVerify::Roots).map_err(|e| connect(url, e))?;
    let mut current = url.clone();
    let mut redirects = Redirects::new();
    loop {
        let response = agent
            .send(
                "GET",
                current.as_str(),
                &[("Accept-Encoding", "identity")],
                Body::Empty,
            )
            .map_err(|e| connect(&current, e))?;
        let status = response.status();
        if is_redirect(status) {
            current = redirects
                .follow(&current, response.header("location"))
                .map_err(|refused| redirect_error(refused, url, &current, input))?;
            continue;
        }
        if status != 200 {
            // 1xx/204/206/3xx-without-redirect: not a full body we can pin.
            return Err(FetchError::Http {
                input: input.to_string(),
                url: current.to_string(),
                status,
            });
        }
        return Ok(Download {
            content_length: response.content_length(),
            body: response.into_reader(),
        });
    }
}

fn redirect_error(refused: RedirectRefused, start: &Url, from: &Url, input: &str) -> FetchError {
    let input = input.to_string();
    match refused {
        RedirectRefused::Downgrade { to } => FetchError::Downgrade {
            input,
            from: from.to_string(),
            to: to.to_string(),
        },
        RedirectRefused::Invalid { location } => FetchError::BadRedirect {
            input,
            url: from.to_string(),
            location,
        },
        RedirectRefused::Scheme { to } => FetchError::BadRedirect {
            input,
            url: from.to_string(),
            location: to.to_string(),
        },
        RedirectRefused::TooMany => FetchError::TooManyRedirects {
            input,
            url: start.to_string(),
            limit: MAX_REDIRECTS,
        },
    }
}
