//! Tests of the thumbnail pipeline: sniffing, limits, orientation, resizing.

use super::*;

#[test]
fn sniff_recognises_each_format_by_its_signature() {
    assert_eq!(
        sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]),
        Some(ImageKind::Jpeg)
    );
    assert_eq!(
        sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        Some(ImageKind::Png)
    );
    assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Some(ImageKind::Gif));
    assert_eq!(sniff(b"GIF87a\x01\0\x01\0"), Some(ImageKind::Gif));
    assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8L"), Some(ImageKind::WebP));
}

#[test]
fn sniff_refuses_lookalikes_and_other_formats() {
    assert_eq!(sniff(b""), None);
    assert_eq!(sniff(&[0xFF, 0xD8]), None, "truncated JPEG signature");
    assert_eq!(
        sniff(b"RIFF\x24\0\0\0WAVEfmt "),
        None,
        "RIFF that is not WebP"
    );
    assert_eq!(sniff(b"RIFF"), None);
    assert_eq!(sniff(b"<html><body>hi</body></html>"), None);
    assert_eq!(sniff(b"BM\x36\0\0\0"), None, "BMP is not accepted");
}

#[test]
fn content_types_match_the_kind() {
    assert_eq!(ImageKind::Jpeg.content_type(), "image/jpeg");
    assert_eq!(ImageKind::Png.content_type(), "image/png");
    assert_eq!(ImageKind::WebP.content_type(), "image/webp");
    assert_eq!(ImageKind::Gif.content_type(), "image/gif");
}

#[test]
fn fit_keeps_aspect_and_never_upscales() {
    assert_eq!(fit_within(4000, 3000, 128), (128, 96));
    assert_eq!(fit_within(3000, 4000, 128), (96, 128));
    assert_eq!(fit_within(200, 400, 128), (64, 128));
    assert_eq!(fit_within(128, 128, 128), (128, 128));
    assert_eq!(fit_within(50, 30, 128), (50, 30));
    assert_eq!(
        fit_within(10_000, 3, 128),
        (128, 1),
        "a side never collapses to 0"
    );
}

#[test]
fn quarter_turns_swap_displayed_dimensions() {
    assert_eq!(displayed(400, 200, Orientation::Rotate90), (200, 400));
    assert_eq!(displayed(400, 200, Orientation::Rotate270FlipH), (200, 400));
    assert_eq!(displayed(400, 200, Orientation::Rotate180), (400, 200));
    assert_eq!(displayed(400, 200, Orientation::NoTransforms), (400, 200));
}

#[test]
fn limits_refuse_oversized_declarations() {
    let limits = Limits::default();
    assert!(limits.check_dimensions(4000, 3000).is_ok());
    assert!(
        limits.check_dimensions(30_000, 30_000).is_err(),
        "side limit"
    );
    assert!(
        limits.check_dimensions(10_000, 10_000).is_err(),
        "pixel limit"
    );
    assert!(limits.check_dimensions(0, 10).is_err(), "empty image");
    assert!(limits.check_alloc(limits.max_alloc_bytes + 1).is_err());
}

#[test]
fn cmyk_converts_to_rgb() {
    // No ink is white, full black ink is black, full cyan is (0, 255, 255).
    let cmyk = [0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0];
    assert_eq!(
        cmyk_to_rgb(&cmyk),
        vec![255, 255, 255, 0, 0, 0, 0, 255, 255]
    );
}

#[test]
fn transparency_is_flattened_onto_white() {
    let rgba = [10, 20, 30, 255, 0, 0, 0, 0, 0, 0, 0, 128];
    assert_eq!(
        flatten_onto_white(&rgba),
        vec![10, 20, 30, 255, 255, 255, 127, 127, 127]
    );
}

#[test]
fn resize_passes_through_when_already_at_size() {
    let raster = Raster {
        width: 2,
        height: 1,
        layout: Layout::Rgb,
        pixels: vec![1, 2, 3, 4, 5, 6],
    };
    let same = resize(raster, 2, 1).map(|r| r.pixels).ok();
    assert_eq!(same, Some(vec![1, 2, 3, 4, 5, 6]));
}

#[test]
fn resize_averages_when_shrinking() {
    let raster = Raster {
        width: 4,
        height: 4,
        layout: Layout::Gray,
        pixels: vec![200; 16],
    };
    let small = resize(raster, 2, 2)
        .map(|r| (r.width, r.height, r.pixels))
        .ok();
    assert_eq!(small, Some((2, 2, vec![200; 4])));
}

/// Found by the `image_thumbnail` fuzz target (fuzz/README.md): a JPEG whose sampling
/// factors (1×3 next to 2×2) make a non-integer ratio. jpeg-decoder refuses it; it used
/// to be handed to the `image` crate, whose zune-jpeg decoder panicked on it
/// (zune-image issue #361).
#[test]
fn jpegs_jpeg_decoder_refuses_fail_to_decode_without_panicking() {
    let bytes = hex::decode(concat!(
        "ffd8ffe000104a464941646f626500000000000000ffc00014080010001804001301011101021101",
        "032200ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d283a333d3c3933",
        "383740485c16000000453738506d51575f626768673e4d71797064785c656763ffdb004301111212",
        "1815182f1a1a2f63423842636363636363636363636363639d9d6363636363636363636363636363",
        "636363636363636363636363636363636363636363ffc4001f000001050101010101010000000000",
        "0000000102030405060708090a0bffc400b5100002010303020403050504040000017d0102030004",
        "1105122131410613516107227114328191a1082342b1c1155203000000617282090a1600ffc0000b",
        "08000c01011100ffdb004300100b0c0e0c283a333d3c39336763ffc4001f000cd9d6d7f8f9faffda",
        "0008010100003f00e6ecac01020000c100ffc0000b08000cd963191a5185868788898a9293949540",
        "969798999ad7f8f9faffda0008010200000100010001c100ffc0000b08000cd9d6d7f8f9faffda00",
        "08010100003f00e6ecac010000c100ffc00008000cd9",
    ))
    .expect("the fixture is hex");
    let made = make_thumbnail(&bytes, 64, &Limits::default());
    assert!(
        matches!(made, Err(ThumbnailError::DecodeFailed(_))),
        "{made:?}"
    );
}
