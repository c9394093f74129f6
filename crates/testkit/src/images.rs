//! Image fixtures made in code: real encoded files of every supported format, a
//! phone photo's EXIF orientation, and decompression bombs.

use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

pub const RED: Rgb<u8> = Rgb([220, 20, 20]);
pub const BLUE: Rgb<u8> = Rgb([20, 20, 220]);

/// Left half red, right half blue: where the colours end up reveals any rotation.
pub fn two_tone(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, _| if x < width / 2 { RED } else { BLUE })
}

/// `image` encoded as JPEG (quality 90), PNG, lossless WebP or GIF.
pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Jpeg => image.write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90)),
        ImageFormat::Png => image.write_with_encoder(PngEncoder::new(&mut out)),
        ImageFormat::WebP => image.write_with_encoder(WebPEncoder::new_lossless(&mut out)),
        ImageFormat::Gif => {
            let rgba = image.to_rgba8();
            GifEncoder::new(&mut out).encode(
                rgba.as_raw(),
                rgba.width(),
                rgba.height(),
                image::ExtendedColorType::Rgba8,
            )
        }
        other => panic!("no fixture encoder for {other:?}"),
    }
    .expect("fixture encodes");
    out.into_inner()
}

/// Inserts an APP1 Exif segment right after SOI holding a little-endian TIFF header and a
/// single IFD entry: Orientation (0x0112), SHORT, count 1.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // value field padding
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD

    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let segment_len = u16::try_from(payload.len() + 2).expect("tiny segment");

    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&segment_len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A JPEG whose frame header claims `width`×`height` but whose data is a 16×16 image.
pub fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = encode(
        &DynamicImage::ImageRgb8(two_tone(16, 16)),
        ImageFormat::Jpeg,
    );
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG has SOF0");
    // FF C0, length(2), precision(1), height(2), width(2)
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(
        &u32::try_from(data.len())
            .expect("small chunk")
            .to_be_bytes(),
    );
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A well-formed PNG of a few hundred bytes declaring a `width`×`height` RGB image: the
/// shape of a decompression bomb, whose IDAT would inflate to gigabytes of zeros.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    png_chunk(&mut png, b"IHDR", &ihdr);
    // zlib header + one final stored block of 256 zero bytes (the start of row 0).
    let mut idat = vec![0x78, 0x01, 0x01, 0x00, 0x01, 0xFF, 0xFE];
    idat.extend_from_slice(&[0u8; 256]);
    idat.extend_from_slice(&0x0100_0001u32.to_be_bytes()); // adler32 of 256 zeros
    png_chunk(&mut png, b"IDAT", &idat);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A small real JPEG (64×48, two-tone): what [`sample_image_url`] serves.
pub fn sample_jpeg() -> &'static [u8] {
    static JPEG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    JPEG.get_or_init(|| {
        encode(
            &DynamicImage::ImageRgb8(two_tone(64, 48)),
            ImageFormat::Jpeg,
        )
    })
}

/// A URL serving [`sample_jpeg`], from a server that lives as long as the test
/// process (on its own thread, so it outlives each test's runtime): the image of
/// images recorded `ready` without a download, which printers really fetch.
pub fn sample_image_url() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let (started, url) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the sample image server");
            runtime.block_on(async move {
                let server = crate::fixture::Fixture::start(|_| {
                    crate::fixture::Reply::bytes(200, "image/jpeg", sample_jpeg().to_vec())
                });
                let _ = started.send(format!("{}/cat.jpg", server.url));
                std::future::pending::<()>().await;
            });
        });
        url.recv().expect("the sample image server starts")
    })
}

/// The lowercase hex SHA-256 of `bytes`, as printers report what they fetched.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_decode_as_what_they_claim() {
        let img = DynamicImage::ImageRgb8(two_tone(40, 20));
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::WebP,
            ImageFormat::Gif,
        ] {
            let bytes = encode(&img, format);
            assert_eq!(image::guess_format(&bytes).unwrap(), format);
            let decoded = image::load_from_memory(&bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (40, 20));
        }
        let rotated = with_exif_orientation(&encode(&img, ImageFormat::Jpeg), 6);
        assert!(image::load_from_memory(&rotated).is_ok());
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }
}
