-- customer-onboarding: open an invoice account for a new business customer.
--
-- A request is what a sales form sends: the company (COMPANY_TITLE, TAX_ID,
-- COUNTRY), the contact person (NAME, LAST_NAME, EMAIL, PHONE) and the
-- credit limit requested (CREDIT_LIMIT). Each step runs on a different
-- transport:
--
--   normalise       lua    clean the input and check it is complete
--   find-customer   nats   look the contact up in the CRM (examples/crm)
--   credit-check    http   score the company at a credit bureau
--                          (examples/onboarding/credit_bureau.py)
--   open-account    queue  a billing worker opens the invoice account
--                          (examples/onboarding/billing_worker.c)
--
-- Routes:
--   complete request, good score   normalise -> find-customer -> credit-check
--                                  -> open-account
--   score below min_score          ... -> credit-check -> manual-review
--   bureau fails (after retries)   ... -> credit-check -> manual-review (on_error)
--   incomplete request             normalise -> reject
--
-- examples/onboarding/run.sh starts everything and submits the requests in
-- rules/onboarding/requests/.

-- Companies scored below this go to a person instead of getting an account.
local min_score = 600

-- Trims a string; anything else becomes "".
local function trim(value)
  if type(value) ~= "string" then
    return ""
  end
  return (value:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Cleans the request into the customer record that the later steps use,
-- and lists what is missing. Only the Lua standard string functions run
-- here: the rules sandbox has no io or os.
module "onboarding-normalise" {
  transport = "lua",
  run = function(input, params)
    local request = input.request
    if type(request) ~= "table" then
      request = {}
    end
    local problems = {}

    local company = trim(request.COMPANY_TITLE)
    if company == "" then
      problems[#problems + 1] = "COMPANY_TITLE is missing"
    end

    -- A Russian tax id (INN) has 10 digits for a company, 12 for a person.
    local tax_id = trim(request.TAX_ID):gsub("[%s%-]", "")
    if not (tax_id:match("^%d+$") and (#tax_id == 10 or #tax_id == 12)) then
      problems[#problems + 1] = "TAX_ID must have 10 or 12 digits"
    end

    local email = trim(request.EMAIL):lower()
    if not email:match("^[^@%s]+@[^@%s]+%.[^@%s]+$") then
      problems[#problems + 1] = "EMAIL is not an e-mail address"
    end

    local limit = request.CREDIT_LIMIT
    if type(limit) == "string" then
      limit = tonumber(trim(limit))
    end
    if limit == nil then
      limit = params.default_limit
    elseif type(limit) ~= "number" or limit <= 0 then
      problems[#problems + 1] = "CREDIT_LIMIT must be a positive number"
      limit = 0
    end

    local country = trim(request.COUNTRY):upper()
    if country == "" then
      country = params.default_country
    end

    local output = {
      valid = #problems == 0,
      customer = {
        company = company,
        tax_id = tax_id,
        email = email,
        phone = trim(request.PHONE):gsub("[^%d+]", ""),
        country = country,
        contact = trim(trim(request.NAME) .. " " .. trim(request.LAST_NAME)),
      },
      requested_limit = limit,
    }
    if #problems > 0 then
      output.problems = problems
    end
    return output
  end,
}

-- The output for a request that cannot be onboarded as it is.
module "onboarding-reject" {
  transport = "lua",
  run = function(input, params)
    return {
      outcome = "rejected",
      problems = input.normalise.problems,
      next_action = params.next_action,
    }
  end,
}

-- Hands the customer to the credit desk, saying why.
module "onboarding-manual-review" {
  transport = "lua",
  run = function(input, params)
    local check = input["credit-check"]
    local reason
    if check.error ~= nil then
      reason = "the credit bureau gave no score: " .. check.error
    else
      reason = string.format("credit score %d is below %d", check.score, params.min_score)
    end
    return {
      outcome = "manual review",
      desk = params.desk,
      company = input.normalise.customer.company,
      reason = reason,
    }
  end,
}

-- The bureau's score for the company's tax id, over HTTP. The node POSTs the
-- step body; the tax id also goes into the path, percent-encoded.
module "credit-bureau" {
  transport = "http",
  url = "http://127.0.0.1:18080/v1/score/{normalise.customer.tax_id}",
  headers = { ["X-Client"] = "conveyor-onboarding" },
  timeout = "2s",
  max_response = "64KiB",
}

-- Billing workers pull these steps from the JetStream stream ORCH_TASKS
-- (subject orch.task.billing-accounts, durable consumer billing-accounts).
-- No timeout: a step waits there until a worker takes it.
module "billing-accounts" { transport = "queue" }

process "customer-onboarding" {
  start = "normalise",
  steps = {
    normalise = {
      subsystem = "onboarding-normalise",
      input = { "request" },
      params = { default_limit = 100000, default_country = "RU" },
      condition = {
        { field = "normalise.valid", operation = "eq", value = false, result = { "reject" } },
      },
      next = { "find-customer" },
    },

    reject = {
      subsystem = "onboarding-reject",
      prev = { "normalise" },
      input = { "normalise" },
      params = { next_action = "ask the customer to complete the form" },
    },

    -- crm-find-contact replies the contact, or {"ID": "0"} for a new customer.
    ["find-customer"] = {
      subsystem = "crm-find-contact",
      prev = { "normalise" },
      input = { "request" },
      timeout = "5s",
      retry = { max = 2, backoff = "250ms" },
      next = { "credit-check" },
    },

    -- A busy bureau (HTTP 5xx, a timeout) is asked again; an unknown tax id
    -- (HTTP 404) is final at once. Either way a failure goes to a person.
    ["credit-check"] = {
      subsystem = "credit-bureau",
      prev = { "find-customer" },
      input = { "normalise" },
      retry = { max = 3, backoff = "500ms", factor = 2, max_backoff = "4s", jitter = true },
      on_error = { "manual-review" },
      condition = {
        { field = "credit-check.score", operation = "gte", value = min_score,
          result = { "open-account" } },
      },
      next = { "manual-review" },
    },

    ["open-account"] = {
      subsystem = "billing-accounts",
      prev = { "credit-check" },
      input = { "normalise", "find-customer", "credit-check" },
      params = { currency = "RUB" },
      retry = { max = 2, backoff = "1s" },
    },

    ["manual-review"] = {
      subsystem = "onboarding-manual-review",
      prev = { "credit-check" },
      input = { "normalise", "credit-check" },
      params = { desk = "credit", min_score = min_score },
    },
  },
}
