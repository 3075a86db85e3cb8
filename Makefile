# Thin wrappers; scripts/test.sh is the source of truth for verification.

.PHONY: verify build fmt

verify:
	bash scripts/test.sh

build:
	cargo build --workspace --release

fmt:
	cargo fmt --all
