//! Thumbnails as download-service users see them: real encoded files in, an upright,
//! correctly sized JPEG out, and hostile files refused cheaply.
//!
//! Fixtures are generated here with the `image` encoders plus small hand-written helpers
//! for what encoders will not produce (an EXIF orientation tag, a PNG header declaring a
//! gigapixel image).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use pixpress_download::thumbnail::{make_thumbnail, ImageKind, Limits, Thumbnail, ThumbnailError};
use pixpress_testkit::images::{
    encode, jpeg_declaring, png_declaring, two_tone, with_exif_orientation, BLUE, RED,
};

/// Counts the current thread's heap use so a test can show a refused bomb never got
/// its pixel buffer, even while other tests run on other threads.
struct ThreadHeap;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + size);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn note_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

unsafe impl GlobalAlloc for ThreadHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static HEAP: ThreadHeap = ThreadHeap;

/// Runs `f` and returns its result with the most heap this thread held above the start.
fn with_peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let out = f();
    (out, PEAK.with(Cell::get) - start)
}

/// Left half red, right half blue: which side ends up where reveals any rotation.
fn thumbnail(bytes: &[u8], size: u32) -> Thumbnail {
    make_thumbnail(bytes, size, &Limits::default()).expect("thumbnail is made")
}

/// Decodes the thumbnail JPEG, checking it is a real JPEG of the reported size.
fn decode_thumbnail(thumb: &Thumbnail) -> RgbImage {
    let image = image::load_from_memory_with_format(&thumb.jpeg, ImageFormat::Jpeg)
        .expect("thumbnail is a decodable JPEG")
        .into_rgb8();
    assert_eq!(
        image.dimensions(),
        (thumb.thumb_width, thumb.thumb_height),
        "encoded size matches the reported thumbnail size"
    );
    image
}

fn assert_close(actual: Rgb<u8>, expected: Rgb<u8>, what: &str) {
    let distance = actual
        .0
        .iter()
        .zip(expected.0)
        .map(|(a, e)| i32::from(*a).abs_diff(i32::from(e)))
        .max()
        .unwrap_or(0);
    assert!(
        distance <= 40,
        "{what}: got {actual:?}, expected about {expected:?}"
    );
}

fn assert_refused_as_undecodable(result: Result<Thumbnail, ThumbnailError>) {
    match result {
        Err(ThumbnailError::DecodeFailed(_)) => {}
        other => panic!(
            "expected DecodeFailed, got {:?}",
            other.map(|t| (t.width, t.height))
        ),
    }
}

#[test]
fn phone_photo_with_exif_orientation_6_comes_out_upright() {
    let jpeg = encode(
        &DynamicImage::ImageRgb8(two_tone(400, 200)),
        ImageFormat::Jpeg,
    );
    let thumb = thumbnail(&with_exif_orientation(&jpeg, 6), 128);

    assert_eq!(thumb.kind, ImageKind::Jpeg);
    assert_eq!(
        (thumb.width, thumb.height),
        (200, 400),
        "portrait once rotated"
    );
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (64, 128));
    // Rotating 90° clockwise brings the stored left (red) edge to the top.
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(32, 16), RED, "top");
    assert_close(*image.get_pixel(32, 112), BLUE, "bottom");
}

#[test]
fn exif_orientation_8_rotates_the_other_way() {
    let jpeg = encode(
        &DynamicImage::ImageRgb8(two_tone(400, 200)),
        ImageFormat::Jpeg,
    );
    let thumb = thumbnail(&with_exif_orientation(&jpeg, 8), 128);

    assert_eq!((thumb.thumb_width, thumb.thumb_height), (64, 128));
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(32, 16), BLUE, "top");
    assert_close(*image.get_pixel(32, 112), RED, "bottom");
}

#[test]
fn jpeg_without_exif_keeps_its_stored_orientation() {
    let jpeg = encode(
        &DynamicImage::ImageRgb8(two_tone(400, 200)),
        ImageFormat::Jpeg,
    );
    let thumb = thumbnail(&jpeg, 128);

    assert_eq!((thumb.width, thumb.height), (400, 200));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (128, 64));
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(16, 32), RED, "left");
    assert_close(*image.get_pixel(112, 32), BLUE, "right");
}

#[test]
fn large_jpeg_is_reduced_to_the_requested_square() {
    let jpeg = encode(
        &DynamicImage::ImageRgb8(two_tone(2400, 1800)),
        ImageFormat::Jpeg,
    );
    let thumb = thumbnail(&jpeg, 200);

    assert_eq!((thumb.width, thumb.height), (2400, 1800));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (200, 150));
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(20, 75), RED, "left");
    assert_close(*image.get_pixel(180, 75), BLUE, "right");
}

/// Encodes with `jpeg-encoder`, which (unlike `image`) writes progressive and CMYK JPEGs.
fn jpeg_encoder_jpeg(
    pixels: &[u8],
    width: u16,
    height: u16,
    color: jpeg_encoder::ColorType,
    progressive: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    encoder.set_progressive(progressive);
    encoder
        .encode(pixels, width, height, color)
        .expect("fixture encodes");
    out
}

#[test]
fn progressive_jpeg_is_thumbnailed() {
    let source = two_tone(1200, 800);
    let jpeg = jpeg_encoder_jpeg(
        source.as_raw(),
        1200,
        800,
        jpeg_encoder::ColorType::Rgb,
        true,
    );
    let thumb = thumbnail(&jpeg, 128);

    assert_eq!((thumb.width, thumb.height), (1200, 800));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (128, 85));
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(16, 42), RED, "left");
    assert_close(*image.get_pixel(112, 42), BLUE, "right");
}

#[test]
fn cmyk_jpegs_are_shown_in_rgb() {
    // Left half full cyan ink, right half full black ink.
    let (width, height) = (320u16, 160u16);
    let cmyk: Vec<u8> = (0..u32::from(width) * u32::from(height))
        .flat_map(|i| {
            if i % u32::from(width) < u32::from(width) / 2 {
                [255, 0, 0, 0]
            } else {
                [0, 0, 0, 255]
            }
        })
        .collect();
    for color in [
        jpeg_encoder::ColorType::Cmyk,
        jpeg_encoder::ColorType::CmykAsYcck,
    ] {
        let jpeg = jpeg_encoder_jpeg(&cmyk, width, height, color, false);
        let thumb = thumbnail(&jpeg, 128);
        assert_eq!(
            (thumb.thumb_width, thumb.thumb_height),
            (128, 64),
            "{color:?}"
        );
        let image = decode_thumbnail(&thumb);
        assert_close(*image.get_pixel(16, 32), Rgb([0, 255, 255]), "cyan ink");
        assert_close(*image.get_pixel(112, 32), Rgb([0, 0, 0]), "black ink");
    }
}

#[test]
fn grayscale_jpeg_is_thumbnailed() {
    let gray = image::GrayImage::from_fn(300, 300, |x, _| {
        image::Luma([if x < 150 { 40 } else { 210 }])
    });
    let jpeg = encode(&DynamicImage::ImageLuma8(gray), ImageFormat::Jpeg);
    let thumb = thumbnail(&jpeg, 128);

    assert_eq!((thumb.thumb_width, thumb.thumb_height), (128, 128));
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(16, 64), Rgb([40, 40, 40]), "dark half");
    assert_close(
        *image.get_pixel(112, 64),
        Rgb([210, 210, 210]),
        "light half",
    );
}

#[test]
fn png_thumbnail_fits_the_square_with_aspect_kept() {
    let png = encode(
        &DynamicImage::ImageRgb8(two_tone(300, 150)),
        ImageFormat::Png,
    );
    let thumb = thumbnail(&png, 128);

    assert_eq!(thumb.kind, ImageKind::Png);
    assert_eq!((thumb.width, thumb.height), (300, 150));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (128, 64));
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(16, 32), RED, "left");
    assert_close(*image.get_pixel(112, 32), BLUE, "right");
}

#[test]
fn transparent_png_is_shown_on_white() {
    let clear = RgbaImage::from_pixel(200, 200, Rgba([0, 0, 0, 0]));
    let png = encode(&DynamicImage::ImageRgba8(clear), ImageFormat::Png);
    let image = decode_thumbnail(&thumbnail(&png, 128));

    assert_close(
        *image.get_pixel(64, 64),
        Rgb([255, 255, 255]),
        "transparent area",
    );
}

#[test]
fn lossless_webp_thumbnail_fits_the_square() {
    let webp = encode(
        &DynamicImage::ImageRgb8(two_tone(150, 300)),
        ImageFormat::WebP,
    );
    let thumb = thumbnail(&webp, 128);

    assert_eq!(thumb.kind, ImageKind::WebP);
    assert_eq!((thumb.width, thumb.height), (150, 300));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (64, 128));
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(8, 64), RED, "left");
    assert_close(*image.get_pixel(56, 64), BLUE, "right");
}

#[test]
fn gif_thumbnail_fits_the_square() {
    let frame = RgbaImage::from_fn(256, 64, |x, _| {
        if x < 128 {
            Rgba([220, 20, 20, 255])
        } else {
            Rgba([20, 20, 220, 255])
        }
    });
    let thumb = thumbnail(
        &encode(&DynamicImage::ImageRgba8(frame.clone()), ImageFormat::Gif),
        128,
    );

    assert_eq!(thumb.kind, ImageKind::Gif);
    assert_eq!((thumb.width, thumb.height), (256, 64));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (128, 32));
    let image = decode_thumbnail(&thumb);
    assert_close(*image.get_pixel(16, 16), RED, "left");
    assert_close(*image.get_pixel(112, 16), BLUE, "right");
}

#[test]
fn images_smaller_than_the_square_are_not_upscaled() {
    let png = encode(&DynamicImage::ImageRgb8(two_tone(50, 30)), ImageFormat::Png);
    let thumb = thumbnail(&png, 128);
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (50, 30));
    decode_thumbnail(&thumb);

    let jpeg = encode(
        &DynamicImage::ImageRgb8(two_tone(40, 100)),
        ImageFormat::Jpeg,
    );
    let thumb = thumbnail(&jpeg, 128);
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (40, 100));
    decode_thumbnail(&thumb);
}

#[test]
fn text_and_html_are_not_images() {
    for bytes in [
        &b"hello, this is a plain text file\n"[..],
        b"<!doctype html><p>404</p>",
        b"",
    ] {
        assert!(
            matches!(
                make_thumbnail(bytes, 128, &Limits::default()),
                Err(ThumbnailError::NotAnImage)
            ),
            "{:?} must be refused as not an image",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn corrupt_data_behind_a_jpeg_signature_fails_to_decode() {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..500u32).map(|i| (i * 37 % 251) as u8));
    assert_refused_as_undecodable(make_thumbnail(&bytes, 128, &Limits::default()));
}

#[test]
fn png_bomb_declaring_30000_square_is_refused_without_allocating_it() {
    let bomb = png_declaring(30_000, 30_000);
    assert!(bomb.len() < 1024, "the bomb itself is tiny");

    let started = Instant::now();
    let (result, peak) = with_peak_heap(|| make_thumbnail(&bomb, 128, &Limits::default()));
    assert_refused_as_undecodable(result);
    assert!(peak < 8 << 20, "refusal allocated {peak} bytes");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refusal took {:?}",
        started.elapsed()
    );
}

#[test]
fn png_within_the_side_limit_but_over_the_pixel_limit_is_refused_without_allocating_it() {
    // 10000×10000 RGB is 300 MB: under image's default 512 MiB, so only our pixel check stops it.
    let bomb = png_declaring(10_000, 10_000);
    let (result, peak) = with_peak_heap(|| make_thumbnail(&bomb, 128, &Limits::default()));
    assert_refused_as_undecodable(result);
    assert!(peak < 8 << 20, "refusal allocated {peak} bytes");
}

#[test]
fn jpeg_declaring_huge_dimensions_is_refused_without_allocating_them() {
    for (width, height) in [(60_000, 60_000), (10_000, 10_000)] {
        let bomb = jpeg_declaring(width, height);
        let (result, peak) = with_peak_heap(|| make_thumbnail(&bomb, 128, &Limits::default()));
        assert_refused_as_undecodable(result);
        assert!(
            peak < 8 << 20,
            "{width}×{height}: refusal allocated {peak} bytes"
        );
    }
}

#[test]
fn configured_limits_are_enforced() {
    let png = encode(
        &DynamicImage::ImageRgb8(two_tone(400, 300)),
        ImageFormat::Png,
    );
    let jpeg = encode(
        &DynamicImage::ImageRgb8(two_tone(400, 300)),
        ImageFormat::Jpeg,
    );
    let tight = Limits {
        max_pixels: 100_000,
        ..Limits::default()
    };
    assert_refused_as_undecodable(make_thumbnail(&png, 128, &tight));
    assert_refused_as_undecodable(make_thumbnail(&jpeg, 128, &tight));

    let narrow = Limits {
        max_side: 399,
        ..Limits::default()
    };
    assert_refused_as_undecodable(make_thumbnail(&png, 128, &narrow));
    assert_refused_as_undecodable(make_thumbnail(&jpeg, 128, &narrow));

    let roomy = Limits {
        max_pixels: 120_000,
        max_side: 400,
        ..Limits::default()
    };
    assert!(make_thumbnail(&png, 128, &roomy).is_ok());
    assert!(make_thumbnail(&jpeg, 128, &roomy).is_ok());
}
