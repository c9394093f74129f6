//! Measures `make_thumbnail` against the seed approach (full decode with
//! `image::load_from_memory`, then `DynamicImage::thumbnail`, then JPEG encoding) on
//! generated photo-like images: time per image and peak heap.
//!
//! Run with `cargo run --release -p pixpress-download --example thumbnail_bench`
//! (`-- --breakdown` for per-decoder figures, `-- --dump DIR` to write the inputs out).
//! Peak heap comes from a counting global allocator (all threads, so the JPEG decoder's
//! worker threads count too); CPU time is the process's user+system time, which also
//! shows whether a speed-up came from extra threads rather than less work.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, Rgb, RgbImage};
use pixpress_download::thumbnail::{make_thumbnail, Limits};

const SIZE: u32 = 128;
const RUNS: usize = 7;

/// Tracks live heap bytes and their high-water mark across all threads.
struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Heap held above the starting level at the worst moment of `f`.
fn peak_heap_of(f: impl FnOnce()) -> usize {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed).saturating_sub(start)
}

/// Process CPU time (user + system) from /proc; `None` off Linux.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // CLK_TCK is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

struct Measurement {
    median: Duration,
    cpu_per_run: Option<Duration>,
    peak: usize,
}

fn measure(mut f: impl FnMut()) -> Measurement {
    f(); // warm-up: thread pools, lazy tables
    let peak = peak_heap_of(&mut f);
    let cpu_before = cpu_time();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    let cpu_per_run = match (cpu_before, cpu_time()) {
        (Some(before), Some(after)) => Some((after - before) / RUNS as u32),
        _ => None,
    };
    times.sort();
    Measurement {
        median: times[RUNS / 2],
        cpu_per_run,
        peak,
    }
}

/// The seed's pipeline: decode everything, `thumbnail`, encode.
fn seed_thumbnail(bytes: &[u8]) -> Vec<u8> {
    let image = image::load_from_memory(bytes).expect("bench image decodes");
    let thumb = image.thumbnail(SIZE, SIZE);
    let mut jpeg = Vec::new();
    thumb
        .write_with_encoder(JpegEncoder::new_with_quality(&mut jpeg, 85))
        .expect("thumbnail encodes");
    jpeg
}

/// Photo-like content: smooth gradients, soft shapes and fine texture, plus sensor-like
/// grain of `grain` levels on luminance (chroma grain is a third of it, as phone pipelines
/// suppress colour noise). Deterministic: xorshift with a fixed seed.
fn photo_like(width: u32, height: u32, grain: i32) -> RgbImage {
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

fn encode_jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(image.clone())
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))
        .expect("bench JPEG encodes");
    out
}

/// Progressive JPEGs are common on the web; `image` only encodes baseline.
fn encode_progressive_jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    encoder.set_progressive(true);
    let (width, height) = image.dimensions();
    encoder
        .encode(
            image.as_raw(),
            u16::try_from(width).expect("bench size fits"),
            u16::try_from(height).expect("bench size fits"),
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("bench JPEG encodes");
    out
}

fn encode_png(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image.clone())
        .write_with_encoder(PngEncoder::new(&mut out))
        .expect("bench PNG encodes");
    out.into_inner()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn cpu_ms(m: &Measurement) -> String {
    m.cpu_per_run.map_or_else(|| "n/a".to_owned(), ms)
}

fn mb(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    let photo_12 = photo_like(4000, 3000, 6);
    let inputs = [
        ("JPEG 12 MP photo", encode_jpeg(&photo_12)),
        ("JPEG 24 MP photo", encode_jpeg(&photo_like(6000, 4000, 6))),
        (
            "JPEG 12 MP high-ISO",
            encode_jpeg(&photo_like(4000, 3000, 16)),
        ),
        ("JPEG 12 MP progressive", encode_progressive_jpeg(&photo_12)),
        ("PNG 2000x2000", encode_png(&photo_like(2000, 2000, 6))),
    ];
    let args: Vec<String> = std::env::args().collect();
    // `--dump DIR` writes the inputs, so other decoders (djpeg, turbojpeg) can be timed on
    // exactly the same bytes.
    if let Some(dir) = args
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| args.get(i + 1))
    {
        for (i, (name, bytes)) in inputs.iter().enumerate() {
            let ext = if name.starts_with("PNG") {
                "png"
            } else {
                "jpg"
            };
            let path = format!("{dir}/bench-{i}.{ext}");
            std::fs::write(&path, bytes).expect("dump directory is writable");
            println!("{path}: {name}");
        }
        return;
    }
    if args.iter().any(|arg| arg == "--breakdown") {
        for (name, bytes) in &inputs[..2] {
            println!("{name}:");
            breakdown(bytes);
        }
        return;
    }

    let limits = Limits::default();
    println!("thumbnail {SIZE}px; time = median of {RUNS} runs (wall), CPU = process user+sys per run; heap = peak during one run");
    println!(
        "| {:<22} | {:>7} | {:>7} | {:>6} | {:>8} | {:>8} | {:>7} | {:>11} | {:>10} | {:>6} | {:>7} |",
        "input", "file MB", "seed ms", "new ms", "speed-up", "seed CPU", "new CPU", "seed heap MB", "new heap MB", "heap ÷", "thumb"
    );
    println!("|{}|", ["---"; 11].join("|"));
    for (name, bytes) in &inputs {
        let seed = measure(|| {
            std::hint::black_box(seed_thumbnail(bytes));
        });
        let mut dims = (0, 0);
        let new = measure(|| {
            let thumb = make_thumbnail(bytes, SIZE, &limits).expect("bench image thumbnails");
            dims = (thumb.thumb_width, thumb.thumb_height);
            std::hint::black_box(thumb);
        });
        println!(
            "| {:<22} | {:>7} | {:>7} | {:>6} | {:>7.1}× | {:>8} | {:>7} | {:>11} | {:>10} | {:>5.1}× | {:>7} |",
            name,
            mb(bytes.len()),
            ms(seed.median),
            ms(new.median),
            seed.median.as_secs_f64() / new.median.as_secs_f64(),
            cpu_ms(&seed),
            cpu_ms(&new),
            mb(seed.peak),
            mb(new.peak),
            seed.peak as f64 / new.peak.max(1) as f64,
            format!("{}x{}", dims.0, dims.1),
        );
    }
}

/// `--breakdown`: where JPEG time goes. Entropy decoding cannot be skipped at any scale,
/// so the 1/8 decode is the floor for this decoder.
fn breakdown(jpeg: &[u8]) {
    let decode_at = |requested: u16| {
        move || {
            let mut decoder = jpeg_decoder::Decoder::new(jpeg);
            decoder
                .scale(requested, requested)
                .expect("bench JPEG scales");
            std::hint::black_box(decoder.decode().expect("bench JPEG decodes"));
        }
    };
    let report = |name: &str, run: &mut dyn FnMut()| {
        let m = measure(run);
        println!(
            "  {name:<32} {:>7} ms  {:>7} CPU ms  {:>6} MB heap",
            ms(m.median),
            cpu_ms(&m),
            mb(m.peak)
        );
    };
    report("image (zune-jpeg), full decode", &mut || {
        std::hint::black_box(image::load_from_memory(jpeg).expect("bench JPEG decodes"));
    });
    report("jpeg-decoder, full decode", &mut decode_at(u16::MAX));
    report("jpeg-decoder, 1/8 decode", &mut decode_at(1));
    report("make_thumbnail", &mut || {
        let thumb = make_thumbnail(jpeg, SIZE, &Limits::default());
        std::hint::black_box(thumb.expect("bench JPEG thumbnails"));
    });
}
