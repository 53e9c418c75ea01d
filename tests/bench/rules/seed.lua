-- bench-seed: the shape of the processes of the system conveyor replaces
-- (its "seed" format), where every step carries a nested condition tree (field / operation / success / failure /
-- result) instead of a plain `next`. It has the same three steps on the
-- same module as bench-linear, so the difference between the two in
-- tests/bench/run.sh is the cost of the rules.
--
-- With the request that bench-driver sends and the reply bench-module gives
-- to every step ({"ID": "4127", "STAGE_ID": "C1:NEW", "OPPORTUNITY":
-- "15400", "ASSIGNED_BY_ID": "7"}), the instance runs s1 -> s2 -> s3 and
-- ends. The trees evaluate 10, 8 and 7 condition nodes, using modifiers,
-- `in` lists, regular expressions and value_field comparisons on the way.
process "bench-seed" {
  start = "s1",
  steps = {
    -- Find the deal: the reply's ID is the deal, "0" or empty when none.
    s1 = {
      subsystem = "bench-echo",
      next = { "s2" },
      condition = {
        -- Requests that are not worth a deal end here.
        { field = "request", operation = "!|is-object", result = {} },
        { field = "request.TAGS", operation = "contains", value = "blacklist", result = {} },
        { field = "request.EMAIL", operation = "lower|ends", value = "@test.invalid", result = {} },
        { field = "request.TITLE", operation = "lower|contains", value = "unsubscribe", result = {} },
        -- No deal: look for the contact by whatever detail the request has.
        { field = "s1.ID", operation = "empty",
          success = {
            { field = "request.CONTACT_ID", operation = "!|empty", result = { "s2" } },
            { field = "request.PHONE", operation = "!|empty", result = { "s2" } },
            { field = "request.EMAIL", operation = "!|empty", result = { "s2" } },
          },
          failure = {
            { field = "request.UF_CRM_SOURCE", operation = "in",
              value = { "WEB", "CALL", "CHAT", "EMAIL" },
              success = {
                -- Large deals go straight to a manager.
                { field = "request.AMOUNT", operation = "number|gt", value = 1000000,
                  result = { "s3" } },
                { field = "s1.STAGE_ID", operation = "starts", value = "C1:",
                  success = {
                    { field = "request.CURRENCY", operation = "ne", value = "RUB",
                      result = { "s3" } },
                    { field = "request.PHONE", operation = "regex",
                      value = "^[+]?[0-9 ()-]{7,20}$", result = { "s2" } },
                  } },
              },
              failure = {
                { field = "request.UTM_SOURCE", operation = "exists", result = { "s2" } },
              } },
          } },
      },
    },

    -- Qualify the contact.
    s2 = {
      subsystem = "bench-echo",
      prev = { "s1" },
      condition = {
        { field = "s2.ID", operation = "empty",
          success = {
            { field = "request.NAME", operation = "trim|empty", result = {} },
          },
          failure = {
            { field = "s2.ASSIGNED_BY_ID", operation = "eq", value = "0", result = { "s3" } },
            { field = "request.CITY", operation = "in", value = { "Moscow", "Saint Petersburg" },
              result = { "s3" } },
            { field = "request.TAGS", operation = "len|gte", value = 3, result = { "s3" } },
            { field = "request.TAGS", operation = "contains", value = "wholesale",
              success = {
                { field = "s1.OPPORTUNITY", operation = "number|lt", value = 1000,
                  result = { "s3" } },
                { field = "s2.STAGE_ID", operation = "upper|starts", value = "C1:",
                  success = {
                    { field = "request.EMAIL", operation = "regex",
                      value = "^[^@ ]+@[^@ ]+[.][a-z]{2,}$", result = { "s3" } },
                  } },
              } },
          } },
        { field = "request.UF_CRM_SOURCE", operation = "eq", value = "WEB", result = { "s3" } },
      },
    },

    -- Create or update the deal, then end.
    s3 = {
      subsystem = "bench-echo",
      prev = { "s1", "s2" },
      condition = {
        { field = "request.UF_CRM_SOURCE", operation = "lower|eq", value = "test", result = {} },
        { field = "s3.ID", operation = "empty", result = {} },
        { field = "request.UF_CRM_DEAL_ID", operation = "number|gt", value = 0,
          success = {
            { field = "request.UF_CRM_DEAL_ID", operation = "ne", value_field = "s3.ID",
              result = { "s2" } },
            { field = "s3.STAGE_ID", operation = "in", value = { "WON", "LOSE" }, result = {} },
            { field = "request.COMMENTS", operation = "len|gt", value = 2000, result = {} },
            { field = "s1.ASSIGNED_BY_ID", operation = "eq", value_field = "s2.ASSIGNED_BY_ID",
              result = {} },
          } },
      },
    },
  },
}
