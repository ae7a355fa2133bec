"""The SQL pgcheckpoint runs: named statements parsed once from queries.sql."""
