//! Pushes one file as a blob with the client, for profiling the upload path:
//! `push_blob HOST REPOSITORY FILE [CHUNK_BYTES]` (monolithic without CHUNK_BYTES). Prints the time taken.

use std::time::Instant;

use formats::digest::{Algorithm, DigestReader};
use registry::client::{BlobSource, ClientOptions, RegistryClient};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (host, repository, file, chunk) = match args.as_slice() {
        [_, h, r, f] => (h, r, f, None),
        [_, h, r, f, c] => (h, r, f, Some(c.parse::<u64>()?)),
        _ => return Err("usage: push_blob HOST REPOSITORY FILE [CHUNK_BYTES]".into()),
    };
    let mut reader = DigestReader::new(std::fs::File::open(file)?, Algorithm::Sha256);
    let size = std::io::copy(&mut reader, &mut std::io::sink())?;
    let digest = reader.finish().1;
    let client = RegistryClient::new(ClientOptions {
        tls_verify: false,
        chunked_upload_threshold: chunk.map(|c| c - 1),
        upload_chunk_size: chunk.unwrap_or(8 << 20),
        ..ClientOptions::default()
    })?;
    let start = Instant::now();
    let outcome = client
        .push_blob(
            host,
            repository,
            &digest,
            size,
            BlobSource::File(file.into()),
            None,
        )
        .await?;
    println!(
        "{:.3} s  {digest} ({size} bytes)  {outcome:?}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
