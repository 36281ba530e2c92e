//! QR codes for links, so a phone or a second laptop can take a link off the
//! screen. The UI draws the modules; it has no encoder of its own.

use serde::Serialize;

/// A QR code as rows of dark (`1`) and light (`0`) modules, without the quiet zone.
#[derive(Debug, Clone, Serialize)]
pub struct Qr {
    /// Modules per side.
    pub size: usize,
    /// `size * size` characters, row by row.
    pub modules: String,
}

/// The code for `text`, or `None` when it does not fit a QR code (links never
/// come close: the largest holds about 2,900 bytes).
pub fn encode(text: &str) -> Option<Qr> {
    // Level M survives a smudged or glary screen photo and keeps links small.
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    let size = code.width();
    let modules = code.to_colors().iter().map(|c| if *c == qrcode::Color::Dark { '1' } else { '0' }).collect();
    Some(Qr { size, modules })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_becomes_a_square_code() {
        let link = format!("peerbox://{}", "3yZe7d9Qk5sPq2MvXhR8bNf6tLwUaC4gJ1oE".repeat(5));
        let qr = super::encode(&link).unwrap();
        assert!(qr.size >= 21 && (qr.size - 21).is_multiple_of(4), "QR sizes are 21 + 4k, got {}", qr.size);
        assert_eq!(qr.modules.len(), qr.size * qr.size);
        // The finder pattern's top-left corner is dark in every QR code.
        assert!(qr.modules.starts_with("1111111"));
        assert!(super::encode(&"x".repeat(10_000)).is_none());
    }
}
