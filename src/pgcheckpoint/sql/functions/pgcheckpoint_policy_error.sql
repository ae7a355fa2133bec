-- pgcheckpoint: revision 1
-- What is wrong with a stored retention policy (RetentionPolicy.to_json's
-- form: keep_last, max_age and thread_ttl in seconds, keep_interrupted), or
-- NULL when the sweep can apply it. The bounds are retention.py's
-- MAX_KEEP_LAST and MAX_DURATION, filled in when this file is rendered, so a
-- policy the library accepts is one the sweep can compute. Never raises: the
-- sweep skips (and reports) a thread whose policy is bad instead of failing.
CREATE OR REPLACE FUNCTION {schema}.pgcheckpoint_policy_error(p_policy jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $pgcheckpoint_policy_error$
DECLARE
    v_key text;
    v jsonb;
    v_unknown text;
BEGIN
    IF p_policy IS NULL OR jsonb_typeof(p_policy) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_policy) <> 'object' THEN
        RETURN format('a policy must be a JSON object, got a JSON %s', jsonb_typeof(p_policy));
    END IF;
    SELECT string_agg(format('%I', k), ', ' ORDER BY k) INTO v_unknown
    FROM jsonb_object_keys(p_policy) AS k
    WHERE k <> ALL (ARRAY['keep_last', 'max_age', 'thread_ttl', 'keep_interrupted']);
    IF v_unknown IS NOT NULL THEN
        RETURN format('unknown key(s) %s', v_unknown);
    END IF;
    v := p_policy -> 'keep_last';
    IF v IS NOT NULL AND jsonb_typeof(v) <> 'null'
       AND (jsonb_typeof(v) <> 'number' OR v::numeric <> trunc(v::numeric)
            OR v::numeric < 1 OR v::numeric > {max_keep_last}) THEN
        RETURN format('keep_last must be an integer from 1 to {max_keep_last}, got %s',
                      left(v::text, 40));
    END IF;
    FOREACH v_key IN ARRAY ARRAY['max_age', 'thread_ttl'] LOOP
        v := p_policy -> v_key;
        IF v IS NOT NULL AND jsonb_typeof(v) <> 'null'
           AND (jsonb_typeof(v) <> 'number' OR v::numeric <= 0
                OR v::numeric > {max_duration_seconds}) THEN
            RETURN format('%s must be a number of seconds above 0 and at most '
                          '{max_duration_seconds}, got %s', v_key, left(v::text, 40));
        END IF;
    END LOOP;
    v := p_policy -> 'keep_interrupted';
    IF v IS NOT NULL AND jsonb_typeof(v) NOT IN ('boolean', 'null') THEN
        RETURN format('keep_interrupted must be true or false, got %s', left(v::text, 40));
    END IF;
    RETURN NULL;
END
$pgcheckpoint_policy_error$;
