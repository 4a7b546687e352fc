//! Generates the gRPC code of `proto/rkron.proto` with the vendored `protoc`, so no system
//! protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/rkron.proto"],
        &["proto"],
    )?;
    Ok(())
}
