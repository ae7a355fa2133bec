"""The SQL pgcheckpoint runs: named statements (queries/), the current text of each
function (functions/) and the numbered migrations (migrations/)."""
