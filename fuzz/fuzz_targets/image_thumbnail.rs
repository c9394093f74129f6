//! Fuzzes the download path's untrusted-bytes stage: sniff, bounded decode and thumbnail
//! (`pixpress_download::thumbnail::make_thumbnail`).
//!
//! The whole input is the downloaded file, so the seed corpus is plain image files. The
//! limits are far smaller than production's so that a decode which ignores them shows up:
//! run with `-malloc_limit_mb` a few times `MAX_ALLOC_BYTES` (see README.md) and libFuzzer
//! reports any single allocation above it as a crash.
//!
//! Properties: never panics; an input that does not sniff as an image is `NotAnImage`; a
//! thumbnail reports the sniffed kind, an original within the limits, and a JPEG that fits
//! the requested square, is no larger than the original and decodes to the size it claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixpress_download::thumbnail::{make_thumbnail, sniff, ImageKind, Limits, ThumbnailError};

const MAX_PIXELS: u64 = 1 << 20;
const MAX_SIDE: u32 = 2048;
const MAX_ALLOC_BYTES: u64 = 16 * 1024 * 1024;

fuzz_target!(|bytes: &[u8]| {
    let limits = Limits {
        max_pixels: MAX_PIXELS,
        max_side: MAX_SIDE,
        max_alloc_bytes: MAX_ALLOC_BYTES,
    };
    // Several thumbnail sizes (so several JPEG IDCT scales) from one corpus, without
    // spending input bytes on it: the size follows from the length.
    let size = [1, 16, 64, 128, 300][bytes.len() % 5];

    match make_thumbnail(bytes, size, &limits) {
        Err(ThumbnailError::NotAnImage) => assert_eq!(sniff(bytes), None),
        Err(ThumbnailError::DecodeFailed(_)) => assert!(sniff(bytes).is_some()),
        Ok(thumb) => {
            assert_eq!(Some(thumb.kind), sniff(bytes));
            assert!(thumb.width >= 1 && thumb.height >= 1);
            assert!(thumb.width <= MAX_SIDE && thumb.height <= MAX_SIDE);
            assert!(u64::from(thumb.width) * u64::from(thumb.height) <= MAX_PIXELS);
            assert!(thumb.thumb_width >= 1 && thumb.thumb_width <= size.min(thumb.width));
            assert!(thumb.thumb_height >= 1 && thumb.thumb_height <= size.min(thumb.height));

            assert_eq!(sniff(&thumb.jpeg), Some(ImageKind::Jpeg));
            let mut decoder = jpeg_decoder::Decoder::new(thumb.jpeg.as_slice());
            assert!(
                decoder.read_info().is_ok(),
                "the thumbnail is a readable JPEG"
            );
            let info = decoder.info();
            assert_eq!(
                info.map(|i| (u32::from(i.width), u32::from(i.height))),
                Some((thumb.thumb_width, thumb.thumb_height))
            );
        }
    }
});
