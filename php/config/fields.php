<?php

// Website form fields → amoCRM custom fields. Each entry names the entity the
// field belongs to and either its field_id (from GET /api/info/custom-fields/…)
// or its field_code. Keys are what the form sends: the UTM fields, and any key
// of `fields` in POST /api/leads.
return [
    'utm_source' => ['entity' => 'leads', 'field_code' => 'UTM_SOURCE'],
    'utm_medium' => ['entity' => 'leads', 'field_code' => 'UTM_MEDIUM'],
    'utm_campaign' => ['entity' => 'leads', 'field_code' => 'UTM_CAMPAIGN'],
    'utm_content' => ['entity' => 'leads', 'field_code' => 'UTM_CONTENT'],
    'utm_term' => ['entity' => 'leads', 'field_code' => 'UTM_TERM'],
];
