"""Raw: the MovieLens release the pipeline reads, downloaded, local, or synthetic."""

from pathlib import Path

from dagster import AssetExecutionContext, Config, MetadataValue, asset
from pydantic import Field

from cinematch_assets import keys, settings
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.sources.movielens import (
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
        default_factory=settings.movielens_variant,
        description=f"GroupLens variant ({VARIANTS_HELP}) or a synthetic one "
        "(synthetic-tiny, synthetic-small, synthetic-1m, synthetic-33m, synthetic-<N>k|m) "
        "(env CINEMATCH_VARIANT).",
    )
    local_path: str = Field(
        default_factory=settings.movielens_local_path,
        description="A local MovieLens zip or extracted folder to use instead of downloading "
        "(env CINEMATCH_MOVIELENS).",
    )
    base_url: str = Field(
        default_factory=settings.movielens_base_url,
        description="Where GroupLens archives are downloaded from (env CINEMATCH_MOVIELENS_URL).",
    )
    seed: int = Field(default=42, description="Seed of the synthetic generator.")


def generate_synthetic(variant: str, seed: int, raw_root: Path, log) -> MovieLensRelease:
    """A synthetic MovieLens-shaped release (generated once per variant and seed)."""
    spec = SyntheticSpec.from_variant(variant, seed=seed)
    folder = raw_root / f"{variant}-seed{seed}"
    summary = generate_movielens(spec, folder)
    log(f"{variant}: {summary['rows']} ({'reused' if summary['reused'] else 'generated'})")
    return MovieLensRelease(
        variant=variant,
        path=folder,
        source=f"synthetic generator, seed {seed}",
        md5=None,
        files={p.name: p.stat().st_size for p in sorted(folder.glob("*.csv"))},
    )


def acquire(config: MovieLensConfig, root: Path, log) -> MovieLensRelease:
    """The release the config asks for, under `root`: local copy, synthetic data, or a
    verified download."""
    if config.local_path:
        return use_local_movielens(config.local_path, root, log=log)
    if config.variant.startswith(SYNTHETIC_PREFIX):
        return generate_synthetic(config.variant, config.seed, root, log)
    return fetch_movielens(config.variant, root, base_url=config.base_url, log=log)


def check_source(config: MovieLensConfig, root: Path) -> str:
    """What `acquire` will use, checked in seconds without downloading or extracting;
    raises MovieLensError (or ValueError for an unknown synthetic variant) saying why not."""
    if config.variant.startswith(SYNTHETIC_PREFIX) and not config.local_path:
        SyntheticSpec.from_variant(config.variant, seed=config.seed)
        return f"the synthetic {config.variant} (generated on first use)"
    return check_movielens_source(
        root,
        variant=config.variant,
        local_path=config.local_path or None,
        base_url=config.base_url,
    )


@asset(
    key=keys.MOVIELENS_ARCHIVE,
    group_name="raw",
    io_manager_key="raw_io_manager",
    kinds={"python", "file"},
    description="The MovieLens release: downloaded from GroupLens and verified against its "
    "published MD5, taken from a local zip/folder (CINEMATCH_MOVIELENS), or generated "
    "synthetically; extracted atomically under $CINEMATCH_HOME/raw.",
)
def movielens_archive(
    context: AssetExecutionContext, config: MovieLensConfig, data_root: DataRoot
) -> MovieLensRelease:
    release = acquire(config, data_root.raw, context.log.info)
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
