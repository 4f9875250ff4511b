//! Decoding photos safely: every way a file can fail to be a usable image
//! becomes an [`ImageError`] naming the file, and the pixel count is checked
//! from the header before any pixel is decoded, so a decompression bomb is
//! refused without touching memory.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, Limits, RgbImage};

/// Largest image decoded by default: 40 megapixels, well above any camera
/// photo in the Kaggle set (at most about 4,000 x 3,000).
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// Why a photo could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {name}: {source}")]
    Read {
        name: String,
        source: std::io::Error,
    },
    #[error("{name} is empty (zero bytes)")]
    Empty { name: String },
    #[error("{name} is not a JPEG or PNG image")]
    NotAnImage { name: String },
    #[error("{name} is {width}x{height} pixels, more than the limit of {max_pixels} pixels")]
    TooLarge {
        name: String,
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("{name} is corrupt or truncated: {reason}")]
    Corrupt { name: String, reason: String },
}

/// Reads and decodes a photo file to 8-bit RGB.
///
/// # Errors
///
/// [`ImageError`] when the file cannot be read, is empty, is not an image,
/// is larger than `max_pixels`, or is corrupt.
pub fn decode_file(path: &Path, max_pixels: u64) -> Result<RgbImage, ImageError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImageError::Read {
        name: name.clone(),
        source,
    })?;
    decode_bytes(&bytes, &name, max_pixels)
}

/// Decodes an in-memory photo (for example an upload) to 8-bit RGB; `name`
/// is used in error messages.
///
/// # Errors
///
/// As [`decode_file`], except for reading.
pub fn decode_bytes(bytes: &[u8], name: &str, max_pixels: u64) -> Result<RgbImage, ImageError> {
    let name = name.to_string();
    if bytes.is_empty() {
        return Err(ImageError::Empty { name });
    }
    let format =
        sniff_format(bytes).ok_or_else(|| ImageError::NotAnImage { name: name.clone() })?;
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        // The JPEG decoder fills a cut-off scan with grey instead of failing.
        let reason = "no end-of-image marker".to_string();
        return Err(ImageError::Corrupt { name, reason });
    }

    let (width, height) =
        reader(bytes, format)
            .into_dimensions()
            .map_err(|e| ImageError::Corrupt {
                name: name.clone(),
                reason: e.to_string(),
            })?;
    if width as u64 * height as u64 > max_pixels {
        return Err(ImageError::TooLarge {
            name,
            width,
            height,
            max_pixels,
        });
    }

    let mut reader = reader(bytes, format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| ImageError::Corrupt {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    Ok(image.into_rgb8())
}

/// The image format from the file's magic bytes, if it is one we decode.
fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(bytes).ok()? {
        format @ (ImageFormat::Jpeg | ImageFormat::Png) => Some(format),
        _ => None,
    }
}

/// Whether the end-of-image marker `FF D9` sits near the end of a JPEG
/// (some cameras append a little data after it).
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn reader(bytes: &[u8], format: ImageFormat) -> ImageReader<Cursor<&[u8]>> {
    ImageReader::with_format(Cursor::new(bytes), format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
            .unwrap();
        bytes
    }

    #[test]
    fn decodes_a_jpeg() {
        let image = decode_bytes(&jpeg(40, 30), "a.jpg", DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(image.dimensions(), (40, 30));
    }

    #[test]
    fn refuses_zero_bytes_text_and_truncation() {
        let err = decode_bytes(&[], "zero.jpg", DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, ImageError::Empty { .. }), "{err}");

        let err = decode_bytes(b"Image,Id\n", "notes.jpg", DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, ImageError::NotAnImage { .. }), "{err}");

        let bytes = jpeg(64, 64);
        let err = decode_bytes(&bytes[..bytes.len() / 3], "cut.jpg", DEFAULT_MAX_PIXELS);
        assert!(matches!(err, Err(ImageError::Corrupt { .. })), "{err:?}");
    }

    #[test]
    fn refuses_too_many_pixels_before_decoding() {
        let err = decode_bytes(&jpeg(100, 100), "big.jpg", 9_999).unwrap_err();
        assert!(matches!(
            err,
            ImageError::TooLarge {
                width: 100,
                height: 100,
                ..
            }
        ));
        assert!(err.to_string().contains("big.jpg"));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = decode_file(Path::new("/nonexistent/x.jpg"), DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.jpg"));
    }
}
