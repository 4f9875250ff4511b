//! The admin token: typed once, kept in the tab's `sessionStorage` (gone
//! when the tab closes, never written to disk by the page), and sent as a
//! bearer header with every admin request.

/// The key the token is stored under.
pub const STORAGE_KEY: &str = "flukeid.admin_token";

/// The token a person typed or pasted: trimmed, with a pasted `Bearer `
/// prefix dropped; `None` when nothing is left.
pub fn normalise(typed: &str) -> Option<String> {
    let typed = typed.trim_start();
    let token = match typed.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => typed[7..].trim(),
        _ => typed.trim(),
    };
    (!token.is_empty()).then(|| token.to_string())
}

/// The stored token, if any.
#[cfg(target_arch = "wasm32")]
pub fn load() -> Option<String> {
    storage()?
        .get_item(STORAGE_KEY)
        .ok()
        .flatten()
        .and_then(|t| normalise(&t))
}

/// Stores the token for this tab.
#[cfg(target_arch = "wasm32")]
pub fn save(token: &str) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(STORAGE_KEY, token);
    }
}

/// Forgets the token (after the server refused it, or on request).
#[cfg(target_arch = "wasm32")]
pub fn forget() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(STORAGE_KEY);
    }
}

#[cfg(target_arch = "wasm32")]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_tokens_are_trimmed_and_lose_a_pasted_scheme() {
        assert_eq!(normalise("  abc123 \n").as_deref(), Some("abc123"));
        assert_eq!(normalise("Bearer abc123").as_deref(), Some("abc123"));
        assert_eq!(normalise("bearer   abc123 ").as_deref(), Some("abc123"));
        assert_eq!(normalise("   "), None);
        assert_eq!(normalise("Bearer "), None);
    }
}
