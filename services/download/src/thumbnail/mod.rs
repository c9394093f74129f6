//! Image sniffing, bounded decoding and thumbnails for downloaded files.
//!
//! Everything here is synchronous CPU work on bytes already in memory; callers run it off
//! the async runtime (`spawn_blocking`). Bytes are untrusted: the format is sniffed from
//! magic bytes, the declared dimensions are checked against [`Limits`] before any pixel
//! buffer exists, and EXIF orientation is honoured so phone photos come out upright.
//!
//! JPEGs, the common case, are decoded with `jpeg-decoder` at a reduced IDCT scale
//! (1/2, 1/4 or 1/8), so a 12 MP photo never exists at full resolution in memory (a
//! progressive one still holds its full-size DCT coefficients until the last scan); other
//! formats are decoded in full by the `image` crate within limits. Either way the final
//! downscale is done by `fast_image_resize` (SIMD convolution) and orientation is applied
//! to the small result, where it is cheap. `jpeg-decoder` rather than libjpeg-turbo: it is
//! memory-safe on untrusted bytes and needs no C build, while libjpeg-turbo was only about
//! 1.4× faster at 1/8 scale on the `pixpress-bench thumbnail` inputs (entropy decoding
//! dominates).
//!
//! This module does not fetch, store or name anything: it turns bytes into a JPEG thumbnail.

use std::io::Cursor;

use fast_image_resize::images::Image as ResizeImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// JPEG quality of thumbnails: small files without visible blocking at thumbnail size.
const THUMBNAIL_QUALITY: u8 = 85;

/// What the bytes really are (sniffed from magic bytes, never from URL or Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl ImageKind {
    /// The media type to store and serve the original with.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::WebP => "image/webp",
            ImageKind::Gif => "image/gif",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            ImageKind::Jpeg => ImageFormat::Jpeg,
            ImageKind::Png => ImageFormat::Png,
            ImageKind::WebP => ImageFormat::WebP,
            ImageKind::Gif => ImageFormat::Gif,
        }
    }
}

/// Recognises the four accepted formats by their signatures; anything else is `None`.
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageKind::Gif)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(ImageKind::WebP)
    } else {
        None
    }
}

/// Bounds on what a decode may cost, checked against the declared dimensions before any
/// pixel buffer is allocated (a few hundred bytes can declare a 30000×30000 image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Largest accepted width or height.
    pub max_side: u32,
    /// Largest total the decoder may allocate at once.
    pub max_alloc_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels: 50_000_000,
            max_side: 20_000,
            max_alloc_bytes: 512 * 1024 * 1024,
        }
    }
}

impl Limits {
    fn check_dimensions(&self, width: u32, height: u32) -> Result<(), ThumbnailError> {
        if width == 0 || height == 0 {
            return Err(ThumbnailError::DecodeFailed(format!(
                "image declares empty dimensions {width}×{height}"
            )));
        }
        if width > self.max_side || height > self.max_side {
            return Err(ThumbnailError::DecodeFailed(format!(
                "image is {width}×{height} pixels, over the limit of {} per side",
                self.max_side
            )));
        }
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(ThumbnailError::DecodeFailed(format!(
                "image is {width}×{height} pixels, over the limit of {} pixels",
                self.max_pixels
            )));
        }
        Ok(())
    }

    fn check_alloc(&self, bytes: u64) -> Result<(), ThumbnailError> {
        if bytes > self.max_alloc_bytes {
            return Err(ThumbnailError::DecodeFailed(format!(
                "decoding would need {bytes} bytes, over the limit of {}",
                self.max_alloc_bytes
            )));
        }
        Ok(())
    }

    /// The same bounds for the `image` crate, which enforces them inside its decoders too.
    fn for_image_crate(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_alloc_bytes);
        limits
    }
}

/// A thumbnail and what was learnt about the original while making it.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub kind: ImageKind,
    /// Original dimensions as displayed, i.e. after EXIF orientation.
    pub width: u32,
    pub height: u32,
    pub thumb_width: u32,
    pub thumb_height: u32,
    /// JPEG-encoded; fits the requested square, aspect kept, never upscaled.
    pub jpeg: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// The bytes are not a JPEG, PNG, WebP or GIF (failure code `not_an_image`).
    #[error("not a JPEG, PNG, WebP or GIF image")]
    NotAnImage,
    /// A recognised format that is corrupt, unsupported or over the limits
    /// (failure code `decode_failed`).
    #[error("image could not be decoded: {0}")]
    DecodeFailed(String),
}

/// Sniffs, decodes within `limits` and returns a JPEG thumbnail fitting `size`×`size`.
///
/// A `size` of 0 is treated as 1.
pub fn make_thumbnail(
    bytes: &[u8],
    size: u32,
    limits: &Limits,
) -> Result<Thumbnail, ThumbnailError> {
    let kind = sniff(bytes).ok_or(ThumbnailError::NotAnImage)?;
    let size = size.max(1);
    let decoded = match kind {
        // No second JPEG decoder for the flavours jpeg-decoder refuses: the `image` crate's
        // (zune-jpeg) cannot read lossless or arithmetic-coded files either, and panicked on
        // the odd ones that reached it (found by fuzzing, see fuzz/README.md).
        ImageKind::Jpeg => decode_jpeg_scaled(bytes, size, limits)?,
        _ => decode_with_image_crate(bytes, kind, limits)?,
    };

    let (width, height) = displayed(decoded.width, decoded.height, decoded.orientation);
    let (thumb_width, thumb_height) = fit_within(width, height, size);
    let (stored_w, stored_h) = displayed(thumb_width, thumb_height, decoded.orientation);

    let small = resize(decoded.raster, stored_w, stored_h)?.flatten_alpha();
    let mut small = small.into_dynamic_image()?;
    small.apply_orientation(decoded.orientation);
    let jpeg = encode_jpeg(&small)?;

    Ok(Thumbnail {
        kind,
        width,
        height,
        thumb_width,
        thumb_height,
        jpeg,
    })
}

/// Dimensions as displayed once `orientation` is applied (quarter turns swap the axes).
/// Swapping is its own inverse, so this also maps displayed dimensions back to stored ones.
fn displayed(width: u32, height: u32, orientation: Orientation) -> (u32, u32) {
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    }
}

/// The largest size with the same aspect that fits `size`×`size`; never larger than the
/// original and never collapsing a side to zero.
fn fit_within(width: u32, height: u32, size: u32) -> (u32, u32) {
    if width <= size && height <= size {
        return (width, height);
    }
    let long = u64::from(width.max(height));
    let scale_side = |side: u32| {
        let scaled = (u64::from(side) * u64::from(size) + long / 2) / long;
        scaled.clamp(1, u64::from(size)) as u32
    };
    (scale_side(width), scale_side(height))
}

/// Decoded pixels (possibly already reduced) with the original's stored dimensions.
struct Decoded {
    /// Stored (pre-orientation) dimensions of the original image.
    width: u32,
    height: u32,
    orientation: Orientation,
    raster: Raster,
}

/// 8-bit interleaved pixels in one of the layouts the resizer and encoder share.
struct Raster {
    width: u32,
    height: u32,
    layout: Layout,
    pixels: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Gray,
    Rgb,
    Rgba,
}

impl Layout {
    fn pixel_type(self) -> PixelType {
        match self {
            Layout::Gray => PixelType::U8,
            Layout::Rgb => PixelType::U8x3,
            Layout::Rgba => PixelType::U8x4,
        }
    }
}

impl Raster {
    /// JPEG has no alpha: transparent areas become white, as most viewers show them.
    fn flatten_alpha(self) -> Raster {
        if self.layout != Layout::Rgba {
            return self;
        }
        Raster {
            width: self.width,
            height: self.height,
            layout: Layout::Rgb,
            pixels: flatten_onto_white(&self.pixels),
        }
    }

    fn into_dynamic_image(self) -> Result<DynamicImage, ThumbnailError> {
        let mismatch = || ThumbnailError::DecodeFailed("pixel buffer size mismatch".to_owned());
        match self.layout {
            Layout::Gray => GrayImage::from_raw(self.width, self.height, self.pixels)
                .map(DynamicImage::ImageLuma8)
                .ok_or_else(mismatch),
            Layout::Rgb => RgbImage::from_raw(self.width, self.height, self.pixels)
                .map(DynamicImage::ImageRgb8)
                .ok_or_else(mismatch),
            Layout::Rgba => image::RgbaImage::from_raw(self.width, self.height, self.pixels)
                .map(DynamicImage::ImageRgba8)
                .ok_or_else(mismatch),
        }
    }
}

/// Decodes a JPEG at the smallest IDCT scale that still covers the thumbnail, so the
/// full-resolution image is never materialised. Flavours jpeg-decoder does not support
/// (arithmetic coding, hierarchical, 12-bit, non-integer sampling ratios) and 16-bit
/// lossless files are refused as `DecodeFailed`.
fn decode_jpeg_scaled(bytes: &[u8], size: u32, limits: &Limits) -> Result<Decoded, ThumbnailError> {
    use jpeg_decoder::{CodingProcess, Decoder, Error as JpegError, PixelFormat};

    let failed = |e: JpegError| ThumbnailError::DecodeFailed(format!("jpeg: {e}"));
    let sixteen_bit = || ThumbnailError::DecodeFailed("jpeg: 16-bit samples".to_owned());
    let mut decoder = Decoder::new(bytes);
    decoder.read_info().map_err(failed)?;
    let info = decoder
        .info()
        .ok_or_else(|| ThumbnailError::DecodeFailed("jpeg: no frame header".to_owned()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    limits.check_dimensions(width, height)?;
    if info.pixel_format == PixelFormat::L16 {
        return Err(sixteen_bit());
    }

    // EXIF sits in APP1, before the frame header, so it is known once the header is read.
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let (shown_w, shown_h) = displayed(width, height, orientation);
    let (thumb_w, thumb_h) = fit_within(shown_w, shown_h, size);
    let (target_w, target_h) = displayed(thumb_w, thumb_h, orientation);
    // jpeg-decoder settles for the smallest scale at which *either* side reaches its
    // request; asking on the long side only keeps a 1000×10 banner from coming out 125 wide.
    let clamp16 = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let (request_w, request_h) = if target_w >= target_h {
        (clamp16(target_w), u16::MAX)
    } else {
        (u16::MAX, clamp16(target_h))
    };
    let (out_w, out_h) = decoder.scale(request_w, request_h).map_err(failed)?;

    // Output plus per-component planes at the reduced size; progressive JPEGs also keep
    // every DCT coefficient of the full image (2 bytes each) until the last scan.
    let components = info.pixel_format.pixel_bytes() as u64;
    let mut needed = 2 * u64::from(out_w) * u64::from(out_h) * components;
    if info.coding_process == CodingProcess::DctProgressive {
        needed += u64::from(width) * u64::from(height) * components * 2;
    }
    limits.check_alloc(needed)?;
    decoder.set_max_decoding_buffer_size(
        usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX),
    );

    let pixels = decoder.decode().map_err(failed)?;
    let (layout, pixels) = match info.pixel_format {
        PixelFormat::L8 => (Layout::Gray, pixels),
        PixelFormat::RGB24 => (Layout::Rgb, pixels),
        PixelFormat::CMYK32 => (Layout::Rgb, cmyk_to_rgb(&pixels)),
        PixelFormat::L16 => return Err(sixteen_bit()),
    };
    Ok(Decoded {
        width,
        height,
        orientation,
        raster: Raster {
            width: u32::from(out_w),
            height: u32::from(out_h),
            layout,
            pixels,
        },
    })
}

/// Full decode through the `image` crate, refused before decoding if the header declares
/// more than `limits` allow.
fn decode_with_image_crate(
    bytes: &[u8],
    kind: ImageKind,
    limits: &Limits,
) -> Result<Decoded, ThumbnailError> {
    let failed = |e: image::ImageError| ThumbnailError::DecodeFailed(e.to_string());
    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.image_format());
    reader.limits(limits.for_image_crate());
    let mut decoder = reader.into_decoder().map_err(failed)?;
    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width, height)?;
    limits.check_alloc(decoder.total_bytes())?;
    // A malformed EXIF block should not cost the user their thumbnail.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(failed)?;

    let raster = match image {
        DynamicImage::ImageLuma8(buf) => (Layout::Gray, buf.into_raw()),
        DynamicImage::ImageRgb8(buf) => (Layout::Rgb, buf.into_raw()),
        DynamicImage::ImageRgba8(buf) => (Layout::Rgba, buf.into_raw()),
        other if other.color().has_alpha() => (Layout::Rgba, other.into_rgba8().into_raw()),
        other => (Layout::Rgb, other.into_rgb8().into_raw()),
    };
    Ok(Decoded {
        width,
        height,
        orientation,
        raster: Raster {
            width,
            height,
            layout: raster.0,
            pixels: raster.1,
        },
    })
}

/// Downscales with a SIMD convolution; when the source already has the target size (small
/// originals, or an exact IDCT scale) it is passed through untouched.
fn resize(raster: Raster, width: u32, height: u32) -> Result<Raster, ThumbnailError> {
    if raster.width == width && raster.height == height {
        return Ok(raster);
    }
    let failed = |e: String| ThumbnailError::DecodeFailed(format!("resize: {e}"));
    let pixel_type = raster.layout.pixel_type();
    let src = ResizeImage::from_vec_u8(raster.width, raster.height, raster.pixels, pixel_type)
        .map_err(|e| failed(e.to_string()))?;
    let mut dst = ResizeImage::new(width, height, pixel_type);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| failed(e.to_string()))?;
    Ok(Raster {
        width,
        height,
        layout: raster.layout,
        pixels: dst.into_vec(),
    })
}

/// jpeg-decoder hands out CMYK with 0 meaning "no ink" (Adobe inversion already undone).
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = 255 - u32::from(px[3]);
        for &ink in &px[..3] {
            rgb.push(((255 - u32::from(ink)) * k / 255) as u8);
        }
    }
    rgb
}

fn flatten_onto_white(rgba: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let alpha = u32::from(px[3]);
        for &channel in &px[..3] {
            let mixed = u32::from(channel) * alpha + 255 * (255 - alpha);
            rgb.push(((mixed + 127) / 255) as u8);
        }
    }
    rgb
}

fn encode_jpeg(image: &DynamicImage) -> Result<Vec<u8>, ThumbnailError> {
    let mut jpeg = Vec::new();
    image
        .write_with_encoder(JpegEncoder::new_with_quality(&mut jpeg, THUMBNAIL_QUALITY))
        .map_err(|e| ThumbnailError::DecodeFailed(format!("encoding thumbnail: {e}")))?;
    Ok(jpeg)
}

#[cfg(test)]
mod tests;
