"""Raw: the MovieLens release the pipeline reads, downloaded, local, or synthetic."""

import os

from dagster import AssetExecutionContext, Config, MetadataValue, asset
from pydantic import Field

from cinematch_assets.settings import raw_root
from cinematch_assets.sources.movielens import (
    DEFAULT_BASE_URL,
    DEFAULT_VARIANT,
    MOVIELENS_VARIANTS,
    MovieLensRelease,
    check_movielens_source,
    fetch_movielens,
    use_local_movielens,
)
from cinematch_assets.sources.synthetic import SyntheticSpec, generate_movielens

VARIANTS_HELP = ", ".join(MOVIELENS_VARIANTS)
SYNTHETIC_PREFIX = "synthetic-"


class MovieLensConfig(Config):
    variant: str = Field(
        default=os.environ.get("CINEMATCH_VARIANT", DEFAULT_VARIANT),
        description=f"GroupLens variant ({VARIANTS_HELP}) or a synthetic one "
        "(synthetic-tiny, synthetic-small, synthetic-1m, synthetic-33m, synthetic-<N>k|m) "
        "(env CINEMATCH_VARIANT).",
    )
    local_path: str = Field(
        default=os.environ.get("CINEMATCH_MOVIELENS", ""),
        description="A local MovieLens zip or extracted folder to use instead of downloading "
        "(env CINEMATCH_MOVIELENS).",
    )
    base_url: str = Field(
        default=os.environ.get("CINEMATCH_MOVIELENS_URL", DEFAULT_BASE_URL),
        description="Where GroupLens archives are downloaded from (env CINEMATCH_MOVIELENS_URL).",
    )
    seed: int = Field(default=42, description="Seed of the synthetic generator.")


def generate_synthetic(variant: str, seed: int, log) -> MovieLensRelease:
    """A synthetic MovieLens-shaped release (generated once per variant and seed)."""
    spec = SyntheticSpec.from_variant(variant, seed=seed)
    folder = raw_root() / f"{variant}-seed{seed}"
    summary = generate_movielens(spec, folder)
    log(f"{variant}: {summary['rows']} ({'reused' if summary['reused'] else 'generated'})")
    return MovieLensRelease(
        variant=variant,
        path=folder,
        source=f"synthetic generator, seed {seed}",
        md5=None,
        files={p.name: p.stat().st_size for p in sorted(folder.glob("*.csv"))},
    )


def acquire(config: MovieLensConfig, log) -> MovieLensRelease:
    """The release the config asks for: local copy, synthetic data, or a verified download."""
    root = raw_root()
    if config.local_path:
        return use_local_movielens(config.local_path, root, log=log)
    if config.variant.startswith(SYNTHETIC_PREFIX):
        return generate_synthetic(config.variant, config.seed, log)
    return fetch_movielens(config.variant, root, base_url=config.base_url, log=log)


def check_source(config: MovieLensConfig) -> str:
    """What `acquire` will use, checked in seconds without downloading or extracting;
    raises MovieLensError (or ValueError for an unknown synthetic variant) saying why not."""
    if config.variant.startswith(SYNTHETIC_PREFIX) and not config.local_path:
        SyntheticSpec.from_variant(config.variant, seed=config.seed)
        return f"the synthetic {config.variant} (generated on first use)"
    return check_movielens_source(
        raw_root(),
        variant=config.variant,
        local_path=config.local_path or None,
        base_url=config.base_url,
    )


@asset(
    key=["raw", "movielens_archive"],
    group_name="raw",
    io_manager_key="raw_io_manager",
    kinds={"python", "file"},
    description="The MovieLens release: downloaded from GroupLens and verified against its "
    "published MD5, taken from a local zip/folder (CINEMATCH_MOVIELENS), or generated "
    "synthetically; extracted atomically under $CINEMATCH_HOME/raw.",
)
def movielens_archive(context: AssetExecutionContext, config: MovieLensConfig) -> MovieLensRelease:
    release = acquire(config, context.log.info)
    context.add_output_metadata(
        {
            "variant": release.variant,
            "path": MetadataValue.path(str(release.path)),
            "source": release.source,
            "md5": release.md5 or "",
            "files": MetadataValue.json(release.files),
            "total_bytes": sum(release.files.values()),
        }
    )
    return release
