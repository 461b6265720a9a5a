<?php

declare(strict_types=1);

namespace AmoGateway\Lead;

use AmoGateway\Config;
use AmoGateway\Http\HttpError;

/**
 * Website input → amoCRM: a form submission (JSON or form fields) → one
 * leads/complex item (the lead, its contact and its company, with UTM and
 * other custom fields mapped through the field map), and a PATCH body → one
 * lead update. Both go through the same checks; every problem is a 422
 * naming the field.
 */
final class LeadMapper
{
    public const NAME_LENGTH = 255;
    public const MAX_TAGS = 20;
    public const TAG_LENGTH = 100;
    public const COMMENT_LENGTH = 10000;
    public const FIELD_LENGTH = 1000;
    private const UTM = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term'];
    /** What PATCH /api/leads/{id} may change. */
    private const PATCHABLE = ['name', 'price', 'status_id', 'pipeline_id', 'responsible_user_id', 'tags', 'fields'];
    /** Whole numbers of a lead and their least value. */
    private const NUMBERS = ['price' => 0, 'pipeline_id' => 1, 'status_id' => 1, 'responsible_user_id' => 1];

    public function __construct(private readonly Config $config)
    {
    }

    /**
     * @param array<string, mixed> $in
     * @return array{lead: array<string, mixed>, comment: ?string}
     */
    public function complexItem(array $in): array
    {
        $name = $this->text($in, 'name', self::NAME_LENGTH);
        $lead = ['name' => $name ?? 'Заявка с сайта'] + $this->numbers($in);
        $defaults = ['pipeline_id' => $this->config->defaultPipelineId, 'status_id' => $this->config->defaultStatusId,
            'responsible_user_id' => $this->config->defaultResponsibleUserId];
        foreach ($defaults as $key => $default) {
            if (!isset($lead[$key]) && $default !== null) {
                $lead[$key] = $default;
            }
        }
        $tags = $this->tags($in['tags'] ?? null);
        if ($tags) {
            $lead['_embedded']['tags'] = array_map(static fn (string $t) => ['name' => $t], $tags);
        }

        $utm = [];
        foreach (self::UTM as $key) {
            $value = $this->text($in, $key, self::FIELD_LENGTH);
            if ($value !== null && isset($this->config->fieldMap[$key])) {
                $utm[$key] = $value;
            }
        }
        $fields = $this->customFields($utm + $this->fieldValues($in));

        $contact = $this->contact($in);
        if ($contact !== null) {
            if ($fields['contacts']) {
                $contact['custom_fields_values'] = array_merge($contact['custom_fields_values'] ?? [], $fields['contacts']);
            }
            $lead['_embedded']['contacts'] = [$contact];
        }
        $company = $in['company'] ?? null;
        $company = $this->text(is_array($company) ? $company : ['name' => $company], 'name', self::NAME_LENGTH, 'company');
        if ($company !== null) {
            $lead['_embedded']['companies'] = [array_filter(['name' => $company, 'custom_fields_values' => $fields['companies'] ?: null])];
        }
        if ($fields['leads']) {
            $lead['custom_fields_values'] = $fields['leads'];
        }
        $comment = $this->text($in, 'comment', self::COMMENT_LENGTH, null, true);
        if ($contact === null && $company === null && $comment === null && $name === null) {
            throw HttpError::badInput('contact', 'a lead needs at least a name, a contact, a company or a comment');
        }
        return ['lead' => $lead, 'comment' => $comment];
    }

    /**
     * A PATCH body → the item for leads()->updateOne().
     * @param array<string, mixed> $in
     * @return array<string, mixed>
     */
    public function patch(int $id, array $in): array
    {
        foreach (array_keys($in) as $k) {
            if (!in_array($k, self::PATCHABLE, true)) {
                throw HttpError::badInput((string) $k, "`$k` cannot be changed here; allowed: " . implode(', ', self::PATCHABLE));
            }
        }
        $patch = ['id' => $id] + $this->numbers($in);
        if (array_key_exists('name', $in)) {
            $patch['name'] = $this->text($in, 'name', self::NAME_LENGTH)
                ?? throw HttpError::badInput('name', 'name must be non-empty text');
        }
        $tags = $this->tags($in['tags'] ?? null);
        if ($tags) {
            $patch['tags_to_add'] = array_map(static fn (string $t) => ['name' => $t], $tags);
        }
        $values = $this->fieldValues($in);
        foreach (array_keys($values) as $key) {
            $entity = $this->config->fieldMap[$key]['entity'];
            if ($entity !== 'leads') {
                // Not dropped silently: this route changes the lead only.
                throw HttpError::badInput("fields.$key", "`$key` is a field of the lead's " . ($entity === 'contacts' ? 'contact' : 'company')
                    . '; PATCH /api/leads/{id} changes the lead only');
            }
        }
        $fields = $this->customFields($values);
        if ($fields['leads']) {
            $patch['custom_fields_values'] = $fields['leads'];
        }
        if (count($patch) === 1) {
            throw HttpError::badInput('body', 'nothing to change; allowed: ' . implode(', ', self::PATCHABLE));
        }
        return $patch;
    }

    /**
     * @param array<string, mixed> $in
     * @return array<string, int>
     */
    private function numbers(array $in): array
    {
        $out = [];
        foreach (self::NUMBERS as $key => $min) {
            $v = $in[$key] ?? null;
            if ($v === null || $v === '') {
                continue;
            }
            if (is_string($v) && preg_match('/^-?\d{1,18}$/', $v)) {
                $v = (int) $v;
            }
            if (!is_int($v) || $v < $min) {
                throw HttpError::badInput($key, "$key must be a whole number of at least $min");
            }
            $out[$key] = $v;
        }
        return $out;
    }

    /**
     * The `fields` object, checked: keys of the field map, text values.
     * @param array<string, mixed> $in
     * @return array<string, string>
     */
    private function fieldValues(array $in): array
    {
        $extra = $in['fields'] ?? [];
        if (!is_array($extra)) {
            throw HttpError::badInput('fields', 'fields must be an object of field-map keys and values');
        }
        $out = [];
        foreach ($extra as $key => $value) {
            if (!is_string($key) || !isset($this->config->fieldMap[$key])) {
                $shown = is_string($key) && self::printable($key) && self::length($key) <= 64 ? $key : '?';
                throw HttpError::badInput("fields.$shown", "`$shown` is not in the field map (" . implode(', ', array_keys($this->config->fieldMap)) . ')');
            }
            $value = $this->text($extra, $key, self::FIELD_LENGTH, "fields.$key", true);
            if ($value !== null) {
                $out[$key] = $value;
            }
        }
        return $out;
    }

    /**
     * Field-map keys and values → custom_fields_values, per entity.
     * @param array<string, string> $values
     * @return array{leads: list<array<string, mixed>>, contacts: list<array<string, mixed>>, companies: list<array<string, mixed>>}
     */
    private function customFields(array $values): array
    {
        $fields = ['leads' => [], 'contacts' => [], 'companies' => []];
        foreach ($values as $key => $value) {
            $def = $this->config->fieldMap[$key];
            $ref = isset($def['field_id']) ? ['field_id' => $def['field_id']] : ['field_code' => $def['field_code']];
            $fields[$def['entity']][] = $ref + ['values' => [['value' => $value]]];
        }
        return $fields;
    }

    /** @return array<string, mixed>|null */
    private function contact(array $in): ?array
    {
        $c = $in['contact'] ?? [];
        if (!is_array($c)) {
            throw HttpError::badInput('contact', 'contact must be an object with name, phone, email');
        }
        // Flat form fields: contact_name, phone, email.
        foreach (['name' => 'contact_name', 'phone' => 'phone', 'email' => 'email'] as $key => $flat) {
            if (!isset($c[$key]) && isset($in[$flat])) {
                $c[$key] = $in[$flat];
            }
        }
        $name = $this->text($c, 'name', self::NAME_LENGTH, 'contact.name');
        $first = $this->text($c, 'first_name', self::NAME_LENGTH, 'contact.first_name');
        $last = $this->text($c, 'last_name', self::NAME_LENGTH, 'contact.last_name');
        $phone = $this->text($c, 'phone', 64, 'contact.phone');
        $email = $this->text($c, 'email', 254, 'contact.email');
        if ($name === null && $first === null && $last === null && $phone === null && $email === null) {
            return null;
        }
        $contact = array_filter(['name' => $name, 'first_name' => $first, 'last_name' => $last], static fn ($v) => $v !== null);
        if ($contact === []) {
            $contact['name'] = $phone ?? $email;
        }
        $cf = [];
        if ($phone !== null) {
            $digits = preg_replace('/[\s()+\-.]/', '', $phone);
            if (!preg_match('/^\d{5,20}$/', (string) $digits)) {
                throw HttpError::badInput('contact.phone', 'the phone must have 5 to 20 digits');
            }
            $cf[] = ['field_code' => 'PHONE', 'values' => [['value' => $phone, 'enum_code' => 'WORK']]];
        }
        if ($email !== null) {
            if (filter_var($email, FILTER_VALIDATE_EMAIL) === false) {
                throw HttpError::badInput('contact.email', 'the email address is not valid');
            }
            $cf[] = ['field_code' => 'EMAIL', 'values' => [['value' => $email, 'enum_code' => 'WORK']]];
        }
        if ($cf) {
            $contact['custom_fields_values'] = $cf;
        }
        return $contact;
    }

    /** @return list<string> */
    private function tags(mixed $tags): array
    {
        if ($tags === null || $tags === '') {
            return [];
        }
        if (is_string($tags)) {
            $tags = explode(',', $tags);
        }
        if (!is_array($tags) || count($tags) > self::MAX_TAGS) {
            throw HttpError::badInput('tags', 'tags must be a list (or a comma-separated string) of at most ' . self::MAX_TAGS . ' names');
        }
        $out = [];
        foreach ($tags as $t) {
            $t = $this->text([$t], 0, self::TAG_LENGTH, 'tags');
            if ($t !== null) {
                $out[] = $t;
            }
        }
        return $out;
    }

    /** Characters, not bytes (without depending on mbstring). */
    private static function length(string $s): int
    {
        return (int) preg_match_all('/./su', $s);
    }

    /** Valid UTF-8 without control characters (a newline or tab only where $multiline). */
    private static function printable(string $s, bool $multiline = false): bool
    {
        return preg_match('//u', $s) === 1
            && preg_match($multiline ? '/[\x00-\x08\x0B\x0C\x0E-\x1F\x7F]/' : '/[\x00-\x1F\x7F]/', $s) === 0;
    }

    /** A trimmed text value or null when absent or empty; 422 naming $field when it is not text or too long. */
    private function text(array $in, string|int $key, int $max, ?string $field = null, bool $multiline = false): ?string
    {
        $field ??= (string) $key;
        $v = $in[$key] ?? null;
        if ($v === null || $v === '') {
            return null;
        }
        if (is_int($v) || is_float($v)) {
            $v = (string) $v;
        }
        if (!is_string($v) || !self::printable($v, $multiline)) {
            throw HttpError::badInput($field, "$field must be text" . ($multiline ? '' : ' on one line') . ' (valid UTF-8, no control characters)');
        }
        $v = trim($v);
        if (self::length($v) > $max) {
            throw HttpError::badInput($field, "$field may be at most $max characters");
        }
        return $v === '' ? null : $v;
    }
}
