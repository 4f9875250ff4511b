//! Websockets to the server: the URL of a socket path on the page's own
//! host, how long to wait before reconnecting, and (in the browser) a
//! socket that hands each text message to a callback.
//!
//! What the messages mean is each feature's business; this module only
//! carries text.

/// The `ws:` or `wss:` URL of `path` on the host that served the page.
pub fn socket_url(page_protocol: &str, host: &str, path: &str) -> String {
    let scheme = if page_protocol == "https:" {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{host}{path}")
}

/// Delays between reconnection attempts: doubling from `first_ms` up to
/// `max_ms`, back to the start after a connection that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    first_ms: u32,
    max_ms: u32,
    next_ms: u32,
}

impl Backoff {
    pub fn new(first_ms: u32, max_ms: u32) -> Self {
        Self {
            first_ms,
            max_ms,
            next_ms: first_ms,
        }
    }

    /// The delay before the next attempt; each call doubles the one after.
    pub fn next_delay_ms(&mut self) -> u32 {
        let delay = self.next_ms;
        self.next_ms = self.next_ms.saturating_mul(2).min(self.max_ms);
        delay
    }

    /// A connection opened: the next failure starts from the first delay.
    pub fn reset(&mut self) {
        self.next_ms = self.first_ms;
    }
}

#[cfg(target_arch = "wasm32")]
pub use browser::Socket;

#[cfg(target_arch = "wasm32")]
mod browser {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use super::socket_url;

    /// An open (or opening) websocket and the callbacks it holds; dropping
    /// it closes the socket.
    pub struct Socket {
        socket: WebSocket,
        _on_open: Closure<dyn FnMut()>,
        _on_message: Closure<dyn FnMut(MessageEvent)>,
        _on_close: Closure<dyn FnMut(CloseEvent)>,
    }

    impl Socket {
        /// Connects to `path` on the page's host. `on_open` may send the
        /// first message; `on_close` gets the close code and reason.
        ///
        /// # Errors
        ///
        /// A sentence when the browser refuses to create the socket.
        pub fn connect(
            path: &str,
            on_open: impl Fn(&WebSocket) + 'static,
            on_message: impl Fn(String) + 'static,
            on_close: impl Fn(u16, String) + 'static,
        ) -> Result<Self, String> {
            let location = web_sys::window().expect("a page has a window").location();
            let protocol = location.protocol().unwrap_or_default();
            let host = location.host().unwrap_or_default();
            let url = socket_url(&protocol, &host, path);
            let socket = WebSocket::new(&url)
                .map_err(|_| format!("The browser refused to open a socket to {url}."))?;

            let opened = socket.clone();
            let on_open = Closure::<dyn FnMut()>::new(move || on_open(&opened));
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                if let Some(text) = event.data().as_string() {
                    on_message(text);
                }
            });
            let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
                on_close(event.code(), event.reason());
            });
            socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
            socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            Ok(Self {
                socket,
                _on_open: on_open,
                _on_message: on_message,
                _on_close: on_close,
            })
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            // Detach the callbacks first: they die with this value.
            self.socket.set_onopen(None);
            self.socket.set_onmessage(None);
            self.socket.set_onclose(None);
            let _ = self.socket.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_pages_get_secure_sockets() {
        assert_eq!(
            socket_url("https:", "whales.example", "/api/ws/train"),
            "wss://whales.example/api/ws/train"
        );
        assert_eq!(
            socket_url("http:", "127.0.0.1:8080", "/api/ws/identify"),
            "ws://127.0.0.1:8080/api/ws/identify"
        );
    }

    #[test]
    fn delays_double_to_the_cap_and_reset_after_success() {
        let mut backoff = Backoff::new(500, 3000);
        let delays: Vec<u32> = (0..5).map(|_| backoff.next_delay_ms()).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 3000, 3000]);
        backoff.reset();
        assert_eq!(backoff.next_delay_ms(), 500);
    }
}
