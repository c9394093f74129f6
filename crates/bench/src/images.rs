//! Images made in code for the thumbnail and download scenarios: photo-like content,
//! encoded as JPEG or PNG.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, Rgb, RgbImage};

/// Smooth gradients, soft shapes, fine texture and sensor-like grain of `grain` levels
/// on luminance (a third of it on chroma). Deterministic: xorshift with a fixed seed.
pub fn photo_like(width: u32, height: u32, grain: i32) -> RgbImage {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = move |amplitude: i32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % (2 * amplitude as u64 + 1)) as i32 - amplitude
    };
    let (w, h) = (width as f32, height as f32);
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / w, y as f32 / h);
        let shapes = ((fx * 23.0).sin() * (fy * 17.0).cos() * 40.0) as i32;
        let texture = ((x as f32 * 0.31).sin() * (y as f32 * 0.23).cos() * 12.0) as i32;
        let vignette = (((fx - 0.5).powi(2) + (fy - 0.5).powi(2)) * 300.0) as i32;
        let luma = texture - vignette + noise(grain);
        let base = [
            (fx * 200.0) as i32 + shapes,
            (fy * 180.0) as i32 + 30 - shapes / 2,
            ((1.0 - fx) * 150.0 + fy * 60.0) as i32 + shapes / 3,
        ];
        Rgb(base.map(|c| (c + luma + noise(grain / 3)).clamp(0, 255) as u8))
    })
}

/// Baseline JPEG, quality 90 (what a phone writes).
pub fn jpeg(image: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(image.clone())
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))?;
    Ok(out)
}

pub fn png(image: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image.clone()).write_with_encoder(PngEncoder::new(&mut out))?;
    Ok(out.into_inner())
}

/// `jpeg` with a comment segment right after SOI holding `tag`: the same picture with
/// different bytes, so content-addressed storage keeps every copy.
pub fn tagged_jpeg(jpeg: &[u8], tag: &str) -> Vec<u8> {
    let text = tag.as_bytes();
    let len = u16::try_from(text.len() + 2).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(jpeg.len() + text.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&text[..usize::from(len) - 2]);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The seed service's thumbnail pipeline: decode everything with
/// `image::load_from_memory`, `thumbnail`, encode JPEG quality 85.
pub fn seed_thumbnail(bytes: &[u8], size: u32) -> anyhow::Result<Vec<u8>> {
    let image = image::load_from_memory(bytes)?;
    let thumb = image.thumbnail(size, size);
    let mut jpeg = Vec::new();
    thumb.write_with_encoder(JpegEncoder::new_with_quality(&mut jpeg, 85))?;
    Ok(jpeg)
}
