<?php

declare(strict_types=1);

namespace AmoGateway\Lead;

use AmoGateway\Config;
use AmoGateway\Http\HttpError;

/**
 * A website form submission (JSON or form fields) → one leads/complex item:
 * the lead, its contact and its company, with UTM and other custom fields
 * mapped through the field map. Every problem is a 422 naming the field.
 */
final class LeadMapper
{
    private const UTM = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term'];

    public function __construct(private readonly Config $config)
    {
    }

    /**
     * @param array<string, mixed> $in
     * @return array{lead: array<string, mixed>, comment: ?string}
     */
    public function complexItem(array $in): array
    {
        $name = $this->string($in, 'name', 255);
        $lead = ['name' => $name ?? 'Заявка с сайта'];
        if (($price = $this->int($in, 'price', 0)) !== null) {
            $lead['price'] = $price;
        }
        foreach (['pipeline_id' => $this->config->defaultPipelineId, 'status_id' => $this->config->defaultStatusId,
                  'responsible_user_id' => $this->config->defaultResponsibleUserId] as $key => $default) {
            $value = $this->int($in, $key, 1) ?? $default;
            if ($value !== null) {
                $lead[$key] = $value;
            }
        }
        $tags = $this->tags($in['tags'] ?? null);
        if ($tags) {
            $lead['_embedded']['tags'] = array_map(static fn (string $t) => ['name' => $t], $tags);
        }

        $fields = ['leads' => [], 'contacts' => [], 'companies' => []];
        foreach (self::UTM as $utm) {
            $value = $this->string($in, $utm, 1000);
            if ($value !== null && isset($this->config->fieldMap[$utm])) {
                $this->mapField($fields, $utm, $value);
            }
        }
        $extra = $in['fields'] ?? [];
        if (!is_array($extra)) {
            throw HttpError::badInput('fields', 'fields must be an object of field-map keys and values');
        }
        foreach ($extra as $key => $value) {
            if (!is_string($key) || !isset($this->config->fieldMap[$key])) {
                throw HttpError::badInput("fields.$key", "`$key` is not in the field map (" . implode(', ', array_keys($this->config->fieldMap)) . ')');
            }
            if (!is_scalar($value) || strlen((string) $value) > 1000) {
                throw HttpError::badInput("fields.$key", "`$key` must be a string or number of at most 1000 characters");
            }
            $this->mapField($fields, $key, (string) $value);
        }

        $contact = $this->contact($in);
        if ($contact !== null) {
            if ($fields['contacts']) {
                $contact['custom_fields_values'] = array_merge($contact['custom_fields_values'] ?? [], $fields['contacts']);
            }
            $lead['_embedded']['contacts'] = [$contact];
        }
        $company = $in['company'] ?? null;
        if (is_array($company)) {
            $company = $company['name'] ?? null;
        }
        if ($company !== null && $company !== '') {
            if (!is_string($company) || self::length($company) > 255) {
                throw HttpError::badInput('company', 'company must be a name of at most 255 characters');
            }
            $lead['_embedded']['companies'] = [array_filter(['name' => trim($company), 'custom_fields_values' => $fields['companies'] ?: null])];
        }
        if ($fields['leads']) {
            $lead['custom_fields_values'] = $fields['leads'];
        }
        $comment = $this->string($in, 'comment', 10000);
        if ($contact === null && !isset($lead['_embedded']['companies']) && $comment === null && $name === null) {
            throw HttpError::badInput('contact', 'a lead needs at least a name, a contact, a company or a comment');
        }
        return ['lead' => $lead, 'comment' => $comment];
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
        $name = $this->string($c, 'name', 255, 'contact.name');
        $first = $this->string($c, 'first_name', 255, 'contact.first_name');
        $last = $this->string($c, 'last_name', 255, 'contact.last_name');
        $phone = $this->string($c, 'phone', 64, 'contact.phone');
        $email = $this->string($c, 'email', 254, 'contact.email');
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

    /** @param array<string, list<array<string, mixed>>> $fields */
    private function mapField(array &$fields, string $key, string $value): void
    {
        $def = $this->config->fieldMap[$key];
        $ref = isset($def['field_id']) ? ['field_id' => $def['field_id']] : ['field_code' => $def['field_code']];
        $fields[$def['entity']][] = $ref + ['values' => [['value' => $value]]];
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
        if (!is_array($tags) || count($tags) > 20) {
            throw HttpError::badInput('tags', 'tags must be a list (or a comma-separated string) of at most 20 names');
        }
        $out = [];
        foreach ($tags as $t) {
            if (!is_string($t) || self::length(trim($t)) > 100) {
                throw HttpError::badInput('tags', 'each tag must be a name of at most 100 characters');
            }
            if (trim($t) !== '') {
                $out[] = trim($t);
            }
        }
        return $out;
    }

    /** Characters, not bytes (without depending on mbstring). */
    private static function length(string $s): int
    {
        return (int) preg_match_all('/./su', $s);
    }

    private function string(array $in, string $key, int $max, ?string $field = null): ?string
    {
        $v = $in[$key] ?? null;
        if ($v === null || $v === '') {
            return null;
        }
        if (is_int($v) || is_float($v)) {
            $v = (string) $v;
        }
        if (!is_string($v) || preg_match('//u', $v) !== 1) {
            throw HttpError::badInput($field ?? $key, ($field ?? $key) . ' must be text');
        }
        $v = trim($v);
        if (self::length($v) > $max) {
            throw HttpError::badInput($field ?? $key, ($field ?? $key) . " may be at most $max characters");
        }
        return $v === '' ? null : $v;
    }

    private function int(array $in, string $key, int $min): ?int
    {
        $v = $in[$key] ?? null;
        if ($v === null || $v === '') {
            return null;
        }
        if (is_string($v) && preg_match('/^-?\d{1,18}$/', $v)) {
            $v = (int) $v;
        }
        if (!is_int($v) || $v < $min) {
            throw HttpError::badInput($key, "$key must be a whole number of at least $min");
        }
        return $v;
    }
}
