"""Token credentials uploaded by manufacturers: PSKC files read and checked (`pskc`), secrets sealed at rest
(`sealing`). Pure functions: nothing here touches the store or Temporal."""
