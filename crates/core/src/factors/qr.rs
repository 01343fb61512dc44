//! QR codes for TOTP enrollment, drawn as inline SVG in Rust (the `qrcode` crate): no image
//! service learns the secret, and an SVG element needs no script, so the page keeps its strict CSP.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::error::InternalError;

/// An `<svg>` element (no XML declaration: it goes inside an HTML page) showing `data`, with the
/// quiet zone around it that readers need, at least `min_px` wide.
pub fn svg(data: &str, min_px: u32) -> Result<String, InternalError> {
    // Level M: an otpauth URI fits comfortably and a slightly blurred phone photo still reads.
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| InternalError::new(format!("qr code: {e}")))?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(min_px, min_px)
        .quiet_zone(true)
        .build();
    let start = image.find("<svg").unwrap_or(0);
    Ok(image[start..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paints the SVG's dark rectangles (`M{x} {y}h{w}v{h}H{x}V{y}`) into a grey image and reads
    /// it back with a QR decoder: the picture, not just the crate's matrix, carries the data.
    fn read_back(svg: &str) -> String {
        let size: usize = svg
            .split("width=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .expect("width");
        let mut grey = vec![255u8; size * size];
        let path = svg
            .split(" d=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("path");
        for rect in path.split('M').filter(|r| !r.is_empty()) {
            let nums: Vec<usize> = rect
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().expect("number"))
                .collect();
            let (x, y, w, h) = (nums[0], nums[1], nums[2], nums[3]);
            for row in y..y + h {
                for col in x..x + w {
                    grey[row * size + col] = 0;
                }
            }
        }
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(size, size, |x, y| grey[y * size + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the picture");
        grids[0].decode().expect("decodes").1
    }

    #[test]
    fn an_otpauth_uri_drawn_as_svg_reads_back_exactly() {
        let uri = "otpauth://totp/Example%20Co:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
                   &issuer=Example%20Co&algorithm=SHA1&digits=6&period=30";
        let image = svg(uri, 200).unwrap();
        assert!(
            image.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{image}"
        );
        assert!(image.ends_with("</svg>"));
        assert!(!image.contains("<script") && !image.contains("href"));
        assert_eq!(read_back(&image), uri);
    }

    #[test]
    fn data_too_long_for_a_qr_code_is_an_error_not_a_panic() {
        assert!(svg(&"x".repeat(5000), 200).is_err());
    }
}
