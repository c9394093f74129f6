//! Writes the committed seed images of the `image_thumbnail` target into
//! `seeds/image_thumbnail/`: one small file per decoder path worth reaching (baseline,
//! progressive, grayscale, CMYK and EXIF-rotated JPEG; RGB, RGBA and 16-bit PNG; an
//! animated GIF; a lossless WebP). Each is a few hundred bytes, so libFuzzer starts from
//! real structure instead of guessing magic numbers.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds` (from the repository root).

use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{Delay, Frame, ImageBuffer, ImageEncoder, Luma, Rgb, Rgba, RgbaImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/image_thumbnail");
    std::fs::create_dir_all(&dir)?;
    let write = |name: &str, bytes: Vec<u8>| -> std::io::Result<()> {
        println!("{name}: {} bytes", bytes.len());
        std::fs::write(dir.join(name), bytes)
    };

    let rgb = ImageBuffer::from_fn(24, 16, |x, y| Rgb([(x * 10) as u8, (y * 15) as u8, 128]));
    let rgba = RgbaImage::from_fn(16, 24, |x, y| {
        Rgba([200, (x * 15) as u8, 40, (y * 10) as u8])
    });
    let gray = ImageBuffer::from_fn(20, 12, |x, y| Luma([((x + y) * 8) as u8]));

    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 50).write_image(
        rgb.as_raw(),
        24,
        16,
        image::ExtendedColorType::Rgb8,
    )?;
    write("rotated.jpg", with_exif_orientation(&jpeg, 6))?;
    write("baseline.jpg", jpeg)?;

    let mut gray_jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut gray_jpeg, 50).write_image(
        gray.as_raw(),
        20,
        12,
        image::ExtendedColorType::L8,
    )?;
    write("gray.jpg", gray_jpeg)?;

    let mut progressive = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut progressive, 50);
    encoder.set_progressive(true);
    encoder.encode(rgb.as_raw(), 24, 16, jpeg_encoder::ColorType::Rgb)?;
    write("progressive.jpg", progressive)?;

    let cmyk: Vec<u8> = rgb
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 20])
        .collect();
    let mut cmyk_jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut cmyk_jpeg, 50).encode(
        &cmyk,
        24,
        16,
        jpeg_encoder::ColorType::Cmyk,
    )?;
    write("cmyk.jpg", cmyk_jpeg)?;

    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(rgb.as_raw(), 24, 16, image::ExtendedColorType::Rgb8)?;
    write("rgb.png", png)?;

    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(
        rgba.as_raw(),
        16,
        24,
        image::ExtendedColorType::Rgba8,
    )?;
    write("rgba.png", png)?;

    let deep: Vec<u8> = gray
        .pixels()
        .flat_map(|p| u16::from(p[0]).wrapping_mul(257).to_be_bytes())
        .collect();
    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(&deep, 20, 12, image::ExtendedColorType::L16)?;
    write("gray16.png", png)?;

    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut gif);
        encoder.set_repeat(Repeat::Infinite)?;
        for shade in [0u8, 255] {
            let frame = RgbaImage::from_fn(12, 8, |x, _| Rgba([shade, (x * 20) as u8, 90, 255]));
            encoder.encode_frame(Frame::from_parts(
                frame,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))?;
        }
    }
    write("animated.gif", gif)?;

    let mut webp = Vec::new();
    WebPEncoder::new_lossless(&mut webp).write_image(
        rgba.as_raw(),
        16,
        24,
        image::ExtendedColorType::Rgba8,
    )?;
    write("lossless.webp", webp)?;
    Ok(())
}

/// `jpeg` with an APP1 Exif segment right after SOI carrying only an Orientation tag.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF, IFD at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let payload = [b"Exif\0\0".as_slice(), &tiff].concat();
    let length = u16::try_from(payload.len() + 2).unwrap_or(u16::MAX);

    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}
