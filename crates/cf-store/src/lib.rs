//! Single-file column-family B+tree store: `Db`, column families, transactions (built in the cf-store issue).
