"""What every stage may use: the schema, errors, progress, config, safe writes, sanitising,
address classes and domain names. Nothing here imports a later stage."""
