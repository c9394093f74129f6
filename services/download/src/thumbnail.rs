//! Image sniffing, bounded decoding and thumbnails (being written).
