<?php
/**
 * Writes php/stubs/amocrm.stub.php from the loaded extension's own reflection,
 * so the stubs declare exactly what the extension exposes. Docblocks come
 * from the table below; a class or method without one fails the generator.
 *
 *   php -d extension=target/release/libamocrm.so php/bin/generate-stubs.php > php/stubs/amocrm.stub.php
 */
declare(strict_types=1);

if (!extension_loaded('amocrm')) {
    fwrite(STDERR, "load the extension first: php -d extension=…/libamocrm.so " . $argv[0] . "\n");
    exit(2);
}

const DOCS = [
    'AmoClient' => "The amoCRM / Kommo client. One per PHP process: every handle from getInstance()\nshares the token lifecycle (load, cross-process lock, refresh) and the HTTP\nconnections, which stay open across PHP-FPM requests.\n\nConfiguration comes from configure(), else AMOCRM_<KEY> environment variables,\nelse php.ini amocrm.<key>; see the README for the keys.",
    'AmoClient::getInstance' => "Returns the client of an account ('default' unless named): the same object on\nevery call within a request (PHP objects end with their request; the token\nlifecycle and the connections live on for the process). Made on first use;\nrebuilt when the account's effective configuration (configure(),\nAMOCRM_<ACCOUNT>_*, AMOCRM_*, php.ini) changed since the last request.\nAccounts share nothing but the process.\n\n@param string|null \$account 1 to 32 lower-case letters, digits, _ and -\n@throws AmoConfigException when the account name or a configuration value is invalid",
    'AmoClient::configure' => "Sets configuration keys of an account ('default' unless named). New options\ntake effect at once (the next call uses them); repeating the same options, as\nevery FPM request does, is a no-op.\n\n@param array<string, string|int|bool|list<string>> \$options e.g. ['client_id' => '…', 'token_path' => '/var/lib/amocrm/tokens.json']\n@param string|null \$account\n@throws AmoConfigException naming an unknown key or an invalid value; the client keeps its previous configuration",
    'AmoClient::getAccount' => "The account this client is for.",
    'AmoClient::__construct' => "Not constructible: use AmoClient::getInstance().",
    '*::__construct' => "Not constructible: AmoClient's methods return services and iterators.",
    'AmoClient::authorizationUrl' => "The amoCRM consent page to send an admin to.\n\n@param string \$state an unguessable value bound to the admin's browser, checked on callback\n@param string \$mode 'post_message' or 'popup'\n@throws AmoConfigException",
    'AmoClient::exchangeApiKey' => "Asks amoCRM to send an authorization code for an old API key to the\nintegration's redirect URI (POST /oauth2/exchange_api_key, answered 202); the\ncode then arrives at the callback, to be exchanged with exchangeCode(). The\nrequest carries the client secret, which PHP code never sees.\n\n@param string \$accountHost the account's host (e.g. example.amocrm.ru); default: the stored pair's base_domain\n@throws AmoConfigException for a host outside allowed_domains, or none known (nothing is sent)\n@throws AmoAuthException when amoCRM refuses the login, key or client\n@throws AmoTransportException|AmoApiException",
    'AmoClient::parseDisposableToken' => "Checks a widget's disposable token (amoCRM signs it HS256 with the client\nsecret, for the scheme and host of redirect_uri; exp and nbf within 30 s) and\nreturns its claims.\n\n@return array{token_uuid: ?string, client_uuid: ?string, account_domain: ?string, account_subdomain: ?string, account_id: ?int, user_id: ?int, is_admin: bool, expires_at: int}\n@throws AmoAuthException titled 'Invalid signature', 'Wrong audience', 'Token expired' or 'Malformed token'\n@throws AmoConfigException when client_secret or redirect_uri is not set",
    'AmoClient::exchangeCode' => "Exchanges the OAuth callback's code for a token pair and stores it. The\nreferer is checked against allowed_domains before any network I/O.\n\n@return array{authorized: bool, mode: string, base_domain: ?string, expires_at: ?int, expires_in: ?int, updated_at: ?int, refresh_expires_at: ?int, refresh_expires_in: ?int, warning: ?string, needs_reauthorization: bool, reauthorization_reason: ?string, token_path: ?string}\n@throws AmoConfigException for a referer outside allowed_domains (nothing is sent)\n@throws AmoAuthException when amoCRM refuses the code\n@throws AmoTransportException|AmoStorageException|AmoApiException",
    'AmoClient::tokenStatus' => "The token status; never a token or the secret.\n\n@return array{authorized: bool, mode: string, base_domain: ?string, expires_at: ?int, expires_in: ?int, updated_at: ?int, refresh_expires_at: ?int, refresh_expires_in: ?int, warning: ?string, needs_reauthorization: bool, reauthorization_reason: ?string, token_path: ?string}\n@throws AmoStorageException when the token file cannot be read or is corrupt",
    'AmoClient::refreshToken' => "Refreshes under the cross-process lock: always when \$force, otherwise only\nwithin refresh_margin of expiry. Returns the token status.\n\n@return array{authorized: bool, mode: string, base_domain: ?string, expires_at: ?int, expires_in: ?int, updated_at: ?int, refresh_expires_at: ?int, refresh_expires_in: ?int, warning: ?string, needs_reauthorization: bool, reauthorization_reason: ?string, token_path: ?string}\n@throws AmoAuthException when amoCRM refuses the refresh token (re-authorize)\n@throws AmoTransportException when amoCRM cannot be reached (the stored pair is kept)\n@throws AmoStorageException|AmoConfigException|AmoApiException",
    'AmoClient::request' => "Sends a request to amoCRM's API with a fresh token and returns the decoded\nJSON as arrays, or null for 204 (an empty list or a missing id). A 401 is\nretried once with a newer or refreshed token, same method and body.\n\n@param string \$method GET, POST, PATCH, PUT or DELETE\n@param string \$path e.g. '/api/v4/leads'\n@param array<string, mixed>|null \$query e.g. ['filter' => ['id' => [1, 2]], 'with' => ['contacts'], 'page' => 2]\n@param mixed \$body arrays and scalars, sent as JSON\n@return array<mixed>|null\n@throws AmoAuthException|AmoValidationException|AmoRateLimitException|AmoTransportException|AmoApiException|AmoStorageException|AmoConfigException",
    'AmoClient::keepAlive' => "Refreshes the pair if it is older than \$maxAgeDays (default: the keepalive_days\nsetting, 30), so that its refresh token, which dies after 90 days unused, never\nages out; waits for the lock like any refresh. A gateway may call it on every\nrequest: a pair that is not due costs a stat. Returns the token status.\n\n@return array<string, mixed>\n@throws AmoConfigException for a \$maxAgeDays outside 1 to 80\n@throws AmoAuthException|AmoTransportException|AmoStorageException|AmoApiException when the refresh fails",
    'AmoClient::withContextUser' => "A handle that sends X-Context-User-ID, so the token acts as that user.\n\n@throws AmoConfigException for an id that is not positive",
    'AmoClient::getContextUser' => "The user id this handle sends as X-Context-User-ID, or null.",
    'AmoClient::importTokens' => "Takes over a token pair from another token file's decoded contents: the old\ngateway's {access_token, refresh_token, expires_at, base_domain, updated_at} or the\nofficial library's {accessToken, refreshToken, expires, baseDomain}. Validated,\nthen stored atomically under the lock. Returns the token status.\n\n@param array<string, mixed> \$pair\n@return array<string, mixed>\n@throws AmoConfigException naming what is wrong (nothing is stored)\n@throws AmoStorageException",
    'AmoClient::exportTokens' => "Writes the stored pair to a new token file (mode 0600, atomically; an existing\nfile is never overwritten) for another store or host to import with\nimportTokens() or `php/bin/amocrm import`: moving from the file store to Redis\nand back. The tokens never pass through PHP. Returns the token status.\n\n@param string \$path an absolute path that does not exist yet\n@return array<string, mixed>\n@throws AmoConfigException for a relative or existing path\n@throws AmoAuthException when nothing is stored\n@throws AmoStorageException",
    'AmoClient::metrics' => "Host-wide counters since the token folder was set up, shared by every PHP process.\n\n@return array{refreshes: int, refresh_failures: int, rate_limited: int, rate_limit_waits: int, rate_limit_wait_ms: int, retries: int, relocations: int, api_calls: array<string, int>}",
    'AmoClient::history' => "The admin page's data, host-wide like metrics(): API calls per minute by status\nclass over the last 24 hours, and the last 20 refreshes with their outcome.\n'minutes' holds only minutes that counted something, oldest first ('at' is the\nminute's start; PHP makes the key '429' the integer 429); 'refreshes' is newest\nfirst; 'reason' never holds a secret.\n\n@return array{from: int, to: int, minutes: list<array{at: int, '2xx': int, '4xx': int, '429': int, '5xx': int, other: int, error: int, waits: int, wait_ms: int}>, refreshes: list<array{at: int, outcome: 'ok'|'failed'|'refused', reason: string}>}",
    'AmoClient::setLogger' => "Sends the extension's log events (a refresh, a failed or refused refresh, a\nretry, a rate-limit wait over 1 s, a storage or lock error, an account that\nmoved; every API call at log_level debug) to \$logger instead of PHP's error log,\nfor every account; null restores the error log. PSR-3 level names, so a PSR-3\nlogger plugs in: fn (\$level, \$message, \$context) => \$monolog->log(\$level, \$message, \$context).\nPHP forgets it when the request ends: set it on every request. An exception it\nthrows is caught (that event goes to the error log); it must not call AmoClient.\nNo message or context holds a token or the secret.\n\n@param (callable(string \$level, string \$message, array<string, mixed> \$context): mixed)|null \$logger",
    'AmoClient::leads' => "Leads: get, iterate, getOne, add, addOne, update, updateOne, addComplex.",
    'AmoClient::contacts' => "Contacts. Find by phone or email: ->get(['query' => '+79001234567']).",
    'AmoClient::companies' => "Companies.",
    'AmoClient::customers' => "Customers (when the account has them enabled).",
    'AmoClient::metrics' => "Host-wide counters since the token folder was set up, shared by every PHP process.\n\n@return array{refreshes: int, refresh_failures: int, rate_limited: int, rate_limit_waits: int, rate_limit_wait_ms: int, retries: int, api_calls: array<string, int>}",
    'AmoClient::leads' => "Leads: get, iterate, getPage, getOne, add, addOne, update, updateOne, addComplex, addOneComplex, getLinks, link, unlink.",
    'AmoClient::contacts' => "Contacts, with getLinks, link and unlink. Find by phone or email: ->get(['query' => '+79001234567']).",
    'AmoClient::companies' => "Companies, with getLinks, link and unlink.",
    'AmoClient::customers' => "Customers (when the account has them enabled); setMode() switches them on or off.",
    'AmoClient::tasks' => "Tasks: text and complete_till are required; complete with updateOne(['id' => …, 'is_completed' => true, 'result' => ['text' => …]]).",
    'AmoClient::notes' => "Notes of one entity type, with getByParentId, pin and unpin.\n\n@param string \$entityType leads, contacts, companies or customers\n@throws AmoConfigException for another entity type",
    'AmoClient::tags' => "Tags of one entity type (get, add).\n\n@param string \$entityType leads, contacts, companies or customers\n@throws AmoConfigException for another entity type",
    'AmoClient::pipelines' => "Lead pipelines, each with its statuses in _embedded.statuses.",
    'AmoClient::statuses' => "The statuses of one pipeline (142 won and 143 lost are in every pipeline).",
    'AmoClient::customFields' => "Custom fields of one entity type.\n\n@param string \$entityType leads, contacts, companies, customers, customers/segments or catalogs/{id}\n@throws AmoConfigException for another entity type",
    'AmoClient::lossReasons' => "Reasons for losing a lead (getOne, add, updateOne, deleteOne).",
    'AmoClient::users' => "Users of the account (admin only): get, getOne, add, activate, deactivate.",
    'AmoClient::roles' => "User roles.",
    'AmoClient::webhooks' => "Webhook subscriptions: get, subscribe, unsubscribe (admin only).",
    'AmoClient::unsorted' => "Unsorted (incoming) leads: get, getOne, addForms, addSip, accept, decline, link, summary.",
    'AmoClient::catalogs' => "Catalogs (lists).",
    'AmoClient::catalogElements' => "The elements of one catalog.",
    'AmoClient::events' => "The event log (read only).",
    'AmoClient::sources' => "Lead sources of the integration, with delete() of several at once.",
    'AmoClient::links' => "Links of one entity type to other entities: get, link, unlink.\n\n@param string \$entityType leads, contacts, companies or customers\n@throws AmoConfigException for another entity type",
    'AmoClient::calls' => "Call records (add only).",
    'AmoClient::widgets' => "Widgets: get, getByCode, install, uninstall.",
    'AmoClient::shortLinks' => "Short links (add only).",
    'AmoClient::currencies' => "Currencies (read only).",
    'AmoClient::products' => "Products: their settings only (settings, updateSettings); a product is a\ncatalog element linked to a lead through links('leads')->link() with metadata\ncatalog_id, quantity and price_id.",
    'AmoClient::transactions' => "Customers' purchases: get, iterate, getOne (with: catalog_elements) for all;\nadd, addOne and deleteOne per customer.",
    'AmoClient::customersSegments' => "Customers' segments: get, iterate, getOne, addOne (one bare object), updateOne\n(and update, one request per item), deleteOne.",
    'AmoClient::customersStatuses' => "Customers' statuses: get, iterate, getOne, add, updateOne (and update, one\nrequest per item), deleteOne.",
    'AmoClient::customersBonusPoints' => "Customers' bonus points: earnPoints, redeemPoints.",
    'AmoClient::customFieldGroups' => "Custom field groups of one entity type: get, iterate, getOne, add, updateOne,\ndeleteOne. Their ids are strings such as 'leads_1234'.\n\n@param string|null \$entityType leads, contacts, companies, customers, or catalogs:{id} (catalogs/{id})\n@throws AmoConfigException when it is null or another entity type",
    'AmoClient::eventTypes' => "The event types (read only): key, type, lang.",
    'AmoClient::entitySubscriptions' => "The users subscribed to one lead or customer: get, iterate, subscribe, unsubscribe.\n\n@param string \$entityType leads or customers\n@param int \$entityId the lead's or customer's id\n@throws AmoConfigException for another entity type or an id that is not positive",
    'AmoClient::websiteButtons' => "Website buttons of sources: get, iterate, getOne (with: scripts for the\nbutton's script), createAsync, updateAsync, addOnlineChatAsync.",
    'AmoClient::chatTemplates' => "Chat templates: the generic verbs, delete (several at once), sendOnReview,\nupdateReviewStatus.",
    'AmoClient::talks' => "Talks (conversations): getOne, close.",
    'AmoClient::account' => "The account (GET /api/v4/account).\n\n@param list<string>|null \$with e.g. ['amojo_id', 'users_groups', 'task_types']\n@throws AmoException",
    'AmoClient::panicForTest' => "For the test suite: panics inside Rust when AMOCRM_TEST_HOOKS=1 is in the\nenvironment, to prove a panic becomes a PHP \\Error and the process goes on.\n\n@throws AmoConfigException when AMOCRM_TEST_HOOKS=1 is not set",
    'AmoEntityService' => "An amoCRM entity list with the official library's verbs, on plain arrays shaped\nexactly like amoCRM's v4 JSON. A verb amoCRM does not offer for this list\nraises AmoConfigException before any request.",
    'AmoLeadsService' => "Leads, with the generic verbs and leads/complex.",
    'AmoWebhooksService' => "Webhook subscriptions (admin only; at most 100 per account).",
    'AmoUnsortedService' => "Incoming leads awaiting acceptance (unsorted).",
    'AmoLinksService' => "Links between entities (a lead's contacts, a contact's catalog elements, ...).",
    'AmoWidgetsService' => "Widgets of the account, by code.",
    'AmoEntityIterator' => "A lazy walk over every entity of a list, one page in memory at a time,\nfollowing amoCRM's _links.next. Use it with foreach; errors surface as the\nAmoException family from foreach.",
    'AmoEntityIterator::current' => "The current entity.\n\n@return array<string, mixed>|null",
    'AmoEntityIterator::key' => "The entity's position across all pages, from 0.",
    'AmoEntityIterator::next' => "Moves on, fetching the next page when this one is used up.\n\n@throws AmoException",
    'AmoEntityIterator::rewind' => "Fetches the first page (again).\n\n@throws AmoException",
    'AmoEntityIterator::valid' => "Whether there is a current entity.",
    '*::get' => "One page of entities: the list inside _embedded, [] when amoCRM answers 204.\n\n@param array{filter?: array<string, mixed>, with?: list<string>, page?: int, limit?: int, order?: array<string, string>, query?: string|int}|null \$params\n@return list<array<string, mixed>>\n@throws AmoException",
    '*::iterate' => "Every entity across all pages, fetched lazily page by page (memory stays flat).\n\n@param array{filter?: array<string, mixed>, with?: list<string>, limit?: int, order?: array<string, string>, query?: string|int}|null \$params\n@throws AmoConfigException for invalid params (the first page is fetched by foreach)",
    '*::getOne' => "One entity by id, or null when amoCRM answers 204.\n\n@param int|string \$id\n@param list<string>|null \$with\n@return array<string, mixed>|null\n@throws AmoException",
    '*::add' => "Creates entities, split into requests of batch_size (default 50, at most 250);\nthe results come back in input order, each with its request_id (the item's\nown, or its position).\n\n@param list<array<string, mixed>> \$items\n@return list<array<string, mixed>>\n@throws AmoException; after a partial failure the message says which items were saved",
    '*::addOne' => "Creates one entity.\n\n@param array<string, mixed> \$item\n@return array<string, mixed>\n@throws AmoException",
    '*::update' => "Updates entities, each with its id, in batches; results in input order.\nWhere amoCRM has no batch update (pipelines, statuses, roles), one request per item.\n\n@param list<array<string, mixed>> \$items\n@return list<array<string, mixed>>\n@throws AmoException",
    '*::updateOne' => "Updates one entity, with its id (PATCH /entity/{id}).\n\n@param array<string, mixed> \$item\n@return array<string, mixed>\n@throws AmoException",
    '*::deleteOne' => "Deletes one entity where amoCRM allows it (pipelines, statuses, custom fields, loss reasons, roles, sources).\n\n@param int|string \$id\n@throws AmoException",
    'AmoLeadsService::addComplex' => "Leads with their contact and company in one call (POST /api/v4/leads/complex),\nat most 50 per request. Each result: id, contact_id, company_id, request_id (a list), merged.\n\n@param list<array<string, mixed>> \$items\n@return list<array{id: int, contact_id: ?int, company_id: ?int, request_id: list<string>, merged: bool}>\n@throws AmoException",
    'AmoWebhooksService::subscribe' => "Subscribes a destination URL to events.\n\n@param list<string> \$settings e.g. ['add_lead', 'status_lead']\n@return array<string, mixed>\n@throws AmoException",
    'AmoWebhooksService::unsubscribe' => "Removes the subscription of a destination URL.\n\n@throws AmoException",
    'AmoUnsortedService::addForms' => "Adds form submissions as unsorted leads.\n\n@param list<array<string, mixed>> \$items\n@return list<array<string, mixed>>\n@throws AmoException",
    'AmoUnsortedService::addSip' => "Adds calls as unsorted leads.\n\n@param list<array<string, mixed>> \$items\n@return list<array<string, mixed>>\n@throws AmoException",
    'AmoUnsortedService::accept' => "Accepts an unsorted item: it becomes a lead.\n\n@param array{user_id?: int, status_id?: int}|null \$params\n@return array<string, mixed>\n@throws AmoException",
    'AmoUnsortedService::decline' => "Declines an unsorted item.\n\n@param array{user_id?: int}|null \$params\n@return array<string, mixed>\n@throws AmoException",
    'AmoUnsortedService::link' => "Links an unsorted item to an existing entity.\n\n@param array{link: array{entity_id: int, entity_type: string}} \$params\n@return array<string, mixed>\n@throws AmoException",
    'AmoUnsortedService::summary' => "Counts by category and outcome.\n\n@param array{filter?: array<string, mixed>}|null \$params\n@return array<string, mixed>\n@throws AmoException",
    'AmoLinksService::link' => "Links entities.\n\n@param list<array{entity_id: int, to_entity_id: int, to_entity_type: string, metadata?: array<string, mixed>}> \$items\n@return list<array<string, mixed>>\n@throws AmoException",
    'AmoLinksService::unlink' => "Removes links; the same items as link().\n\n@param list<array{entity_id: int, to_entity_id: int, to_entity_type: string}> \$items\n@throws AmoException",
    'AmoWidgetsService::getByCode' => "One widget by its code, or null.\n\n@return array<string, mixed>|null\n@throws AmoException",
    'AmoWidgetsService::install' => "Installs a widget with its settings.\n\n@param array<string, mixed>|null \$settings\n@return array<string, mixed>\n@throws AmoException",
    'AmoWidgetsService::uninstall' => "Uninstalls a widget.\n\n@throws AmoException",
    'AmoProductsService' => "Products: the account's products settings.",
    'AmoProductsService::settings' => "The products settings (GET /api/v4/catalogs/products/settings).\n\n@return array{is_enabled: bool}|null\n@throws AmoException",
    'AmoProductsService::updateSettings' => "Turns products on or off.\n\n@param array{is_enabled: bool} \$settings\n@return array{is_enabled: bool}\n@throws AmoConfigException without a boolean is_enabled\n@throws AmoException",
    'AmoTransactionsService' => "Customers' purchases (transactions).",
    'AmoTransactionsService::getOne' => "One purchase by id, or null.\n\n@param int|string \$id\n@param list<string>|null \$with e.g. ['catalog_elements']\n@return array<string, mixed>|null\n@throws AmoException",
    'AmoTransactionsService::add' => "Adds purchases to a customer (POST /api/v4/customers/{id}/transactions), in\nbatches; results in input order. Each needs its price.\n\n@param list<array{price: int, comment?: string, completed_at?: int, next_price?: int, next_date?: int, _embedded?: array{catalog_elements?: list<array{id: int, metadata: array{catalog_id: int, quantity?: int|float}}>}}> \$items\n@param bool \$accrueBonus accrue bonus points for them, as the official library (default true)\n@return list<array<string, mixed>>\n@throws AmoConfigException for a customer id that is not positive or an item without an int price\n@throws AmoException",
    'AmoTransactionsService::addOne' => "Adds one purchase to a customer.\n\n@param array<string, mixed> \$item\n@return array<string, mixed>\n@throws AmoException",
    'AmoTransactionsService::deleteOne' => "Deletes one purchase of a customer.\n\n@throws AmoException",
    'AmoBonusPointsService' => "Customers' bonus points.",
    'AmoBonusPointsService::earnPoints' => "Adds points to a customer; returns the new balance.\n\n@throws AmoConfigException for ids or points that are not positive\n@throws AmoException",
    'AmoBonusPointsService::redeemPoints' => "Takes points from a customer (at most the balance: more is amoCRM's\nvalidation error); returns the new balance.\n\n@throws AmoConfigException for ids or points that are not positive\n@throws AmoException",
    'AmoEntitySubscriptionsService' => "The users subscribed to one lead or customer.",
    'AmoEntitySubscriptionsService::subscribe' => "Subscribes users; returns the subscriptions after it.\n\n@param list<int> \$userIds\n@return list<array{subscriber_id: int, type: string}>\n@throws AmoException",
    'AmoEntitySubscriptionsService::unsubscribe' => "Unsubscribes one user.\n\n@throws AmoException",
    'AmoWebsiteButtonsService' => "Website buttons (chat buttons of sources).",
    'AmoWebsiteButtonsService::getOne' => "One button by its source id, or null; with ['scripts'] it has its script.\n\n@param int|string \$sourceId\n@param list<string>|null \$with scripts, deleted\n@return array<string, mixed>|null\n@throws AmoException",
    'AmoWebsiteButtonsService::createAsync' => "Creates a button; amoCRM finishes it asynchronously.\n\n@param array{pipeline_id: int, trusted_websites?: list<string>, is_used_in_app?: bool, name?: string} \$params\n@return array{source_id: int, trusted_websites: list<string>, name: ?string}\n@throws AmoException",
    'AmoWebsiteButtonsService::updateAsync' => "Adds trusted websites to a button or renames it; returns the button.\n\n@param array{trusted_websites?: array{add: list<string>}, name?: string} \$params\n@return array<string, mixed>\n@throws AmoException",
    'AmoWebsiteButtonsService::addOnlineChatAsync' => "Adds an online chat to the button's source.\n\n@throws AmoException",
    'AmoChatTemplatesService' => "Chat templates, with WhatsApp review.",
    'AmoChatTemplatesService::delete' => "Deletes several templates.\n\n@param list<int> \$ids\n@throws AmoException",
    'AmoChatTemplatesService::sendOnReview' => "Sends a WhatsApp (type waba) template to review; returns its reviews.\n\n@return list<array{id: int, source_id: ?int, status: string, reject_reason: ?string}>\n@throws AmoException",
    'AmoChatTemplatesService::updateReviewStatus' => "Sets a review's status.\n\n@param array{status: string, reject_reason?: string} \$review status: draft, review, rejected, approved or paused\n@return array{id: int, source_id: ?int, status: string, reject_reason: ?string}\n@throws AmoException",
    'AmoTalksService' => "Talks: the conversations of chats.",
    'AmoTalksService::getOne' => "One talk by id (a missing one is amoCRM's 404, an AmoApiException).\n\n@param int|string \$talkId\n@param list<string>|null \$with\n@return array<string, mixed>|null\n@throws AmoException",
    'AmoTalksService::close' => "Closes a talk; forceClose closes it without the NPS bot.\n\n@throws AmoException",
    'AmoClient::files' => "The account's files on its drive host (the drive_url of GET /api/v4/account,\nchecked against allowed_domains): upload from disk in parts, get, iterate,\ngetOne, updateOne (rename), delete, deleteOne.",
    'AmoClient::entityFiles' => "The files attached to one lead, contact, company or customer: get, add,\naddOne, delete, deleteOne (by file uuid).\n\n@param string \$entityType leads, contacts, companies or customers\n@param int \$entityId\n@throws AmoConfigException for another entity type or an id that is not positive",
    'AmoFilesService' => "Files on the account's drive host (API v1.0). Uploads go from disk in the parts\nthe drive host asks for (at most 16 MiB each), one part in memory at a time.",
    'AmoFilesService::upload' => "Uploads the file at \$path: a session, then its parts from disk. A part whose\nanswer was lost (a dropped connection, a timeout, 502/503/504) is sent again to\nits own URL, at most 5 times with backoff; the upload is never restarted.\n\n@param array{file_name?: string, content_type?: string, file_uuid?: string, with_preview?: bool}|null \$options\n  file_name: the name amoCRM shows (default: the file's); content_type: default\n  from the name's extension; file_uuid: add a new version of that file\n@return array<string, mixed> the file: uuid, version_uuid, name, size, _links, …\n@throws AmoConfigException for a missing, empty or unreadable file, a directory or a bad option (before any request), or a drive host outside allowed_domains\n@throws AmoException",
    'AmoFilesService::get' => "One page of files: the list inside _embedded.files, [] when the drive answers 204.\n\n@param array{filter?: array<string, mixed>, page?: int, limit?: int}|null \$params\n@return list<array<string, mixed>>\n@throws AmoException",
    'AmoFilesService::getOne' => "One file by uuid, or null when the drive has none.\n\n@return array<string, mixed>|null\n@throws AmoConfigException for a string that is not a uuid\n@throws AmoException",
    'AmoFilesService::updateOne' => "Renames a file.\n\n@param array{uuid: string, name: string} \$item\n@return array<string, mixed>\n@throws AmoException",
    'AmoFilesService::delete' => "Deletes files by uuid (to the drive's trash).\n\n@param list<string> \$uuids\n@throws AmoException",
    'AmoFilesService::deleteOne' => "Deletes one file by uuid (to the drive's trash).\n\n@throws AmoException",
    'AmoEntityFilesService' => "The files attached to one lead, contact, company or customer (/api/v4/{entity}/{id}/files).",
    'AmoEntityFilesService::get' => "The attached files, [['file_uuid' => …], …]; [] when amoCRM answers 204.\n\n@param array<string, mixed>|null \$params\n@return list<array{file_uuid: string}>\n@throws AmoException",
    'AmoEntityFilesService::add' => "Attaches files by uuid.\n\n@param list<string> \$fileUuids\n@return list<array{file_uuid: string}>\n@throws AmoException",
    'AmoEntityFilesService::addOne' => "Attaches one file by uuid.\n\n@return array{file_uuid: string}\n@throws AmoException",
    'AmoEntityFilesService::delete' => "Detaches files by uuid (they stay on the drive).\n\n@param list<string> \$fileUuids\n@throws AmoException",
    'AmoEntityFilesService::deleteOne' => "Detaches one file by uuid (it stays on the drive).\n\n@throws AmoException",
    'AmoFilesIterator' => "A lazy walk over every file of the drive, one page in memory at a time,\nfollowing _links.next (checked against allowed_domains). Use it with foreach.",
    'AmoFilesIterator::current' => "The current file.\n\n@return array<string, mixed>|null",
    'AmoFilesIterator::key' => "The file's position across all pages, from 0.",
    'AmoFilesIterator::next' => "Moves on, fetching the next page when this one is used up.\n\n@throws AmoException",
    'AmoFilesIterator::rewind' => "Fetches the first page (again).\n\n@throws AmoException",
    'AmoFilesIterator::valid' => "Whether there is a current file.",
    '*::__call' => "A method this service does not have (a verb of the official library that\nAmoClient lacks, a typo): raises AmoConfigException naming the method, the\nservice and the methods it has, before any request, so catch (AmoException)\nblocks ported by renaming catch it. method_exists() and reflection still show\nonly the real methods.\n\n@param array<int, mixed> \$arguments\n@throws AmoConfigException always",
    'AmoClient::__call' => "A service or method AmoClient does not have: raises AmoConfigException naming\nit and listing the client's methods, rather than PHP's \\Error.\n\n@param array<int, mixed> \$arguments\n@throws AmoConfigException always",
    '*::getPage' => "One page as amoCRM answered it: _page, _links (self, next, prev),\n_total_items and _page_count where amoCRM sends them (custom fields, loss\nreasons, pipelines, statuses, users, roles, sources), and _embedded.<list>;\nnull when amoCRM answers 204.\n\n@param array{filter?: array<string, mixed>, with?: list<string>, page?: int, limit?: int, order?: array<string, string>, query?: string|int}|null \$params\n@return array<string, mixed>|null\n@throws AmoException",
    '*::nextPage' => "The page after one from getPage()/nextPage()/prevPage(), following its\n_links.next.href; null when it has none. A link to another host or another\nlist is refused, not followed.\n\n@param array<string, mixed> \$page\n@return array<string, mixed>|null\n@throws AmoConfigException for a link to another host or list\n@throws AmoException",
    '*::prevPage' => "The page before one from getPage()/nextPage()/prevPage(), following its\n_links.prev.href; null on the first page. A link to another host or another\nlist is refused, not followed.\n\n@param array<string, mixed> \$page\n@return array<string, mixed>|null\n@throws AmoConfigException for a link to another host or list\n@throws AmoException",
    'AmoLeadsService::addOneComplex' => "One lead with its contact and company (POST /api/v4/leads/complex).\n\n@param array<string, mixed> \$item\n@return array{id: int, contact_id: ?int, company_id: ?int, request_id: list<string>, merged: bool}\n@throws AmoException",
    'AmoLinkableService' => "Contacts or companies: the generic verbs, and getLinks, link, unlink of one entity.",
    '*::getLinks' => "The links of one entity (GET /api/v4/{type}/{id}/links); [] on 204.\n\n@param int|array{id: int} \$entity an id, or the entity as get() returns it\n@param array{filter?: array<string, mixed>}|null \$params\n@return list<array{to_entity_id: int, to_entity_type: string, metadata: ?array<string, mixed>}>\n@throws AmoConfigException for an entity without a positive id (nothing is sent)\n@throws AmoException",
    '*::link' => "Links one entity to others (POST /api/v4/{type}/{id}/link), as the official\nlibrary's \$service->link(\$entity, \$links).\n\n@param int|array{id: int} \$entity an id, or the entity as get() returns it\n@param list<array{to_entity_id: int, to_entity_type: string, metadata?: array<string, mixed>}> \$links\n@return list<array<string, mixed>>\n@throws AmoConfigException for an empty list or an entity without id (nothing is sent)\n@throws AmoException",
    '*::unlink' => "Removes links of one entity (POST /api/v4/{type}/{id}/unlink); the same items as link().\n\n@param int|array{id: int} \$entity an id, or the entity as get() returns it\n@param list<array{to_entity_id: int, to_entity_type: string}> \$links\n@throws AmoConfigException for an empty list or an entity without id (nothing is sent)\n@throws AmoException",
    'AmoUsersService' => "Users of the account (admin only): the generic read and add verbs, activate\nand deactivate (amoCRM has no user update).",
    'AmoUsersService::activate' => "Activates users (POST /api/v4/users/activate), ten a request (amoCRM's limit).\n\n@param list<int|array{id: int}> \$userIds ids, or users as get() returns them\n@throws AmoConfigException for an empty list or a bad id (nothing is sent)\n@throws AmoException",
    'AmoUsersService::deactivate' => "Deactivates users (POST /api/v4/users/deactivate), ten a request.\n\n@param list<int|array{id: int}> \$userIds ids, or users as get() returns them\n@throws AmoConfigException for an empty list or a bad id (nothing is sent)\n@throws AmoException",
    'AmoCustomersService' => "Customers, with the account's customers mode.",
    'AmoCustomersService::setMode' => "Switches customers on in a mode, or off (PATCH /api/v4/customers/mode).\nReturns the mode amoCRM now has, null when customers are off.\n\n@param string \$mode 'periodicity' or 'segments'\n@throws AmoConfigException for another mode (nothing is sent)\n@throws AmoException",
    'AmoSourcesService' => "Lead sources of the integration, with batch delete.",
    'AmoSourcesService::delete' => "Deletes sources (DELETE /api/v4/sources), in batches of batch_size.\n\n@param list<int|array{id: int}> \$ids ids, or sources as get() returns them\n@throws AmoConfigException for an empty list or a bad id (nothing is sent)\n@throws AmoException",
    'AmoNotesService' => "Notes of one entity type: the generic verbs, notes by parent, pin and unpin.\ngetOne() also takes the official library's ['id' => note, 'entity_id' => parent].",
    'AmoNotesService::getByParentId' => "The notes of one entity (GET /api/v4/{type}/{id}/notes); [] on 204.\n\n@param array{filter?: array<string, mixed>, page?: int, limit?: int, order?: array<string, string>}|null \$params\n@return list<array<string, mixed>>\n@throws AmoException",
    'AmoNotesService::pin' => "Pins a note (POST /api/v4/{type}/notes/{id}/pin).\n\n@param int \$id\n@throws AmoException",
    'AmoNotesService::unpin' => "Unpins a note (POST /api/v4/{type}/notes/{id}/unpin).\n\n@param int \$id\n@throws AmoException",
    'AmoException' => "Base of every exception the extension throws. The accessors match the\nofficial library's AmoCRMApiException, so catch blocks port by renaming.",
    'AmoException::getTitle' => "amoCRM's title for the error (or a short label), '' when none.",
    'AmoException::getDescription' => "amoCRM's detail or hint, or an excerpt of a body that was not JSON; '' when none.",
    'AmoException::getErrorCode' => "The HTTP status, or 0 when no answer came.",
    'AmoException::getValidationErrors' => "amoCRM's validation-errors list (400), [] when none.\n\n@return list<array{request_id: string, errors: list<array{code: string, path: string, detail: string}>}>",
    'AmoException::getLastRequestInfo' => "What was sent and what came back; never a token or the secret.\n\n@return array{method?: string, url?: string, status?: int, request_id?: ?string}",
    'AmoAuthException' => "Not authorized, the refresh token was refused (re-authorize), or 401 twice.",
    'AmoValidationException' => "amoCRM answered 400 with validation-errors; see getValidationErrors().",
    'AmoRateLimitException' => "amoCRM answered 429, or 403 with its account-block page.",
    'AmoTransportException' => "Connect, TLS, timeout or a dropped connection; no usable answer came.",
    'AmoConfigException' => "A configuration key or an argument is invalid; the message names it, and\ngetTitle() says which: 'Invalid configuration' or 'Invalid argument'.",
    'AmoStorageException' => "The token file or its lock cannot be read or written; the message names the path.",
    'AmoApiException' => "Any other non-2xx answer, or an answer that cannot be understood.",
];

function doc(string $key, string $indent): string
{
    if (!isset(DOCS[$key]) && str_contains($key, '::')) {
        $key = '*::' . explode('::', $key)[1];
    }
    if (!isset(DOCS[$key])) {
        fwrite(STDERR, "no docblock for $key: add one to " . __FILE__ . "\n");
        exit(1);
    }
    $lines = explode("\n", DOCS[$key]);
    $out = "$indent/**\n";
    foreach ($lines as $l) {
        $out .= rtrim("$indent * $l") . "\n";
    }
    return $out . "$indent */\n";
}

function type(?ReflectionType $t): string
{
    return $t === null ? '' : ((string) $t) . ' ';
}

function param(ReflectionParameter $p): string
{
    $s = type($p->getType()) . '$' . $p->getName();
    if ($p->isOptional()) {
        $s .= ' = ' . ($p->isDefaultValueAvailable() ? var_export($p->getDefaultValue(), true) : 'null');
    }
    return str_replace(['NULL', 'false', 'true'], ['null', 'false', 'true'], $s);
}

$ext = new ReflectionExtension('amocrm');
$classes = $ext->getClasses();
// Base classes first, then alphabetical: a stable order for the drift test.
uksort($classes, static function (string $a, string $b) use ($classes): int {
    $depth = static function (ReflectionClass $c): int {
        $d = 0;
        while ($c = $c->getParentClass()) {
            $d++;
        }
        return $d;
    };
    return [$depth($classes[$a]), $a] <=> [$depth($classes[$b]), $b];
});

echo "<?php\n\n";
echo "// Generated by php/bin/generate-stubs.php from the amocrm extension " . phpversion('amocrm') . "; do not edit.\n";
echo "// IDE stubs: the extension declares these classes natively.\n\n";
foreach ($classes as $name => $class) {
    echo doc($name, '');
    $parent = $class->getParentClass();
    $interfaces = array_diff($class->getInterfaceNames(), $parent ? $parent->getInterfaceNames() : [], ['Traversable']);
    echo "class $name" . ($parent ? ' extends \\' . $parent->getName() : '')
        . ($interfaces ? ' implements \\' . implode(', \\', $interfaces) : '') . "\n{\n";
    // Visibility and `static` as reflection reports them: the drift test
    // then compares constructors and every modifier too.
    $modifiers = static fn (int $m): string => implode(' ', Reflection::getModifierNames($m)) . ' ';
    foreach ($class->getProperties() as $prop) {
        if ($prop->getDeclaringClass()->getName() !== $name) {
            continue;
        }
        $default = $prop->hasDefaultValue() ? ' = ' . strtolower(var_export($prop->getDefaultValue(), true)) : '';
        echo '    ' . $modifiers($prop->getModifiers()) . '$' . $prop->getName() . "$default;\n";
    }
    $methods = array_filter($class->getMethods(), static fn ($m) => $m->getDeclaringClass()->getName() === $name);
    usort($methods, static fn ($a, $b) => [!$a->isConstructor(), !$a->isStatic(), $a->getName()] <=> [!$b->isConstructor(), !$b->isStatic(), $b->getName()]);
    foreach ($methods as $m) {
        echo "\n" . doc("$name::" . $m->getName(), '    ');
        $params = implode(', ', array_map('param', $m->getParameters()));
        $ret = $m->hasReturnType() ? ': ' . $m->getReturnType() : '';
        echo '    ' . $modifiers($m->getModifiers()) . 'function ' . $m->getName() . "($params)$ret {}\n";
    }
    echo "}\n\n";
}
