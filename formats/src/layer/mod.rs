//! Image layers: deterministic tar layers written in one streaming pass, and a safe unpacker for untrusted ones.
//!
//! [`write_dir_layer`] and [`write_entries_layer`] turn a directory or a COPY-style list of entries into a layer
//! whose digests depend only on the content (sorted entries, fixed mtime, uid/gid 0, empty user names, fixed
//! compression settings). [`unpack`] applies one uncompressed layer onto a directory, honouring OCI whiteouts and
//! refusing every entry that would land outside the target. [`decompressing_reader`] detects gzip, zstd or a
//! plain tar by its magic bytes and decompresses it within an [`ExpansionLimit`] (decompression bombs).

mod compression;
mod decompress;
mod pgzip;
mod tar_writer;
mod unpack;

pub use compression::{
    CompressingWriter, Compression, DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL, GzipBlocks,
    ParseCompressionError, ZSTD_WORKERS,
};
pub use decompress::{
    DEFAULT_MAX_EXPANSION, DecompressError, Decompressed, EXPANSION_ALLOWANCE, ExpansionLimit,
    decompressing_reader,
};
pub use pgzip::{
    BlockIndex, BlockRecord, FinishedGzip, PGZIP_BLOCK_SIZE, PGZIP_INDEX_VERSION, PGZIP_MAX_BLOCK,
    PGZIP_MIN_BLOCK, ParallelGzipWriter, PreviousBlob,
};
pub use tar_writer::{
    EntrySource, LayerDigests, LayerEntry, LayerError, LayerOptions, write_dir_layer,
    write_entries_layer, write_entries_layer_reusing,
};
pub use unpack::{UnpackError, UnpackOptions, UnpackReport, unpack};

/// Media type of an uncompressed OCI layer; compressed layers append [`Compression::media_type_suffix`].
pub const OCI_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
