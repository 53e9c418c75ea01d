-- deal-routing: find the CRM deal an incoming request belongs to.
--
-- A request is what the CRM's web form, chat or telephony sends: TITLE,
-- NAME, PHONE, EMAIL, the deal it is about when known (UF_CRM_DEAL_ID, "0"
-- or "" when not) and where it came from (UF_CRM_SOURCE). The process finds
-- the deal; without one it looks for the contact, and without a contact
-- either it creates a lead with default values. Whatever deal it ends with
-- is remembered for this request.
--
-- Routes:
--   deal found              get-bitrix-deal -> get-bitrix-deal-by-id -> remember-deal
--   contact found, no deal  get-bitrix-deal -> bitrix-find-contact -> bitrix-create-deal
--                           -> remember-deal
--   nothing found           get-bitrix-deal -> bitrix-find-contact
--                           -> bitrix-lead-set-default-values -> bitrix-create-lead
-- A request without CONTACT_ID, PHONE and EMAIL cannot match a contact, so
-- it skips bitrix-find-contact and goes straight to the lead.
--
-- The crm-* subsystems are served over NATS by examples/crm (crm-module);
-- lead-defaults runs inside the node.

-- Default values for a new lead. crm-create-lead keeps every field the
-- request filled in and takes only the blank ones from here.
module "lead-defaults" {
  transport = "lua",
  run = function(input, params)
    local request = input.request
    if type(request) ~= "table" then
      request = {}
    end
    local source = request.UF_CRM_SOURCE
    if type(source) ~= "string" or source == "" then
      source = params.source
    end
    return {
      TITLE = params.title,
      STATUS_ID = params.status,
      SOURCE_ID = source,
      ASSIGNED_BY_ID = params.assigned_by,
      OPENED = "Y",
      COMMENTS = "No deal or contact matched this request.",
    }
  end,
}

-- Lookups only read, and the create steps return their first record when
-- retried, so every CRM step can be retried safely.
local crm_retry = { max = 2, backoff = "250ms", factor = 2 }

process "deal-routing" {
  start = "get-bitrix-deal",
  steps = {
    -- Replies the deal ID as a string, or null when there is none.
    ["get-bitrix-deal"] = {
      subsystem = "crm-find-deal",
      input = { "request" },
      timeout = "5s",
      retry = crm_retry,
      condition = {
        { field = "get-bitrix-deal.value", operation = "!|empty",
          result = { "get-bitrix-deal-by-id" } },
        -- No deal: a contact can only be found by an ID, a phone or an e-mail.
        { field = "get-bitrix-deal.value", operation = "empty",
          success = {
            { field = "request.CONTACT_ID", operation = "!|empty",
              result = { "bitrix-find-contact" } },
            { field = "request.PHONE", operation = "!|empty",
              result = { "bitrix-find-contact" } },
            { field = "request.EMAIL", operation = "!|empty",
              result = { "bitrix-find-contact" } },
          } },
      },
      -- Reached only when the nested list above decided nothing: no way to
      -- find a contact, so the request becomes a lead.
      next = { "bitrix-lead-set-default-values" },
    },

    ["get-bitrix-deal-by-id"] = {
      subsystem = "crm-get-deal",
      prev = { "get-bitrix-deal" },
      input = { "get-bitrix-deal" },
      params = { id_step = "get-bitrix-deal" },
      timeout = "5s",
      retry = crm_retry,
      next = { "remember-deal" },
    },

    -- Replies the contact, or {"ID": "0"} when none matches.
    ["bitrix-find-contact"] = {
      subsystem = "crm-find-contact",
      prev = { "get-bitrix-deal" },
      input = { "request" },
      timeout = "5s",
      retry = crm_retry,
      condition = {
        { field = "bitrix-find-contact.ID", operation = "empty",
          result = { "bitrix-lead-set-default-values" } },
        { field = "bitrix-find-contact.ID", operation = "!|empty",
          result = { "bitrix-create-deal" } },
      },
    },

    ["bitrix-create-deal"] = {
      subsystem = "crm-create-deal",
      prev = { "bitrix-find-contact" },
      input = { "request", "bitrix-find-contact" },
      params = { contact_step = "bitrix-find-contact", stage = "NEW" },
      timeout = "5s",
      retry = crm_retry,
      next = { "remember-deal" },
    },

    ["bitrix-lead-set-default-values"] = {
      subsystem = "lead-defaults",
      prev = { "get-bitrix-deal", "bitrix-find-contact" },
      input = { "request" },
      params = { source = "WEB", status = "NEW", title = "Incoming request", assigned_by = "1" },
      next = { "bitrix-create-lead" },
    },

    ["bitrix-create-lead"] = {
      subsystem = "crm-create-lead",
      prev = { "bitrix-lead-set-default-values" },
      input = { "request", "bitrix-lead-set-default-values" },
      params = { defaults_step = "bitrix-lead-set-default-values" },
      timeout = "5s",
      retry = crm_retry,
    },

    -- Records that this request saw the deal, whichever way it was found.
    ["remember-deal"] = {
      subsystem = "crm-remember-deal",
      prev = { "get-bitrix-deal-by-id", "bitrix-create-deal" },
      input = { "request", "get-bitrix-deal-by-id", "bitrix-create-deal" },
      params = { deal_steps = { "get-bitrix-deal-by-id", "bitrix-create-deal" } },
      timeout = "5s",
      retry = crm_retry,
    },
  },
}
