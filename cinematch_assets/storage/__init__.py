"""Libraries the resources and the app use: Delta tables, atomic files, the serving and
report file layouts, and the sweeping of what killed runs leave behind. No Dagster."""
