<?php

declare(strict_types=1);

namespace AmoBench\Workload;

use AmoBench\Context;
use AmoBench\Emulator;
use AmoBench\Php;
use AmoBench\Row;
use AmoBench\Section;
use AmoBench\Summary;

/** (b) 200 pages of 250 leads with custom fields and contacts, and (g) their memory. */
final class LeadPages
{
    public const PAGES = 200;
    public const PATH = '/api/v4/leads?limit=250&with=contacts';

    /** What the emulator's own work was, and what (b) ran against. */
    public string $emulatorNote = '';

    public function __construct(private readonly Context $c)
    {
    }

    /**
     * 250 contacts and 250 leads through the emulator's real API, each lead
     * with one contact, a tag and four custom field values in Cyrillic (text,
     * textarea, select): a page of about 340 KB, as amoCRM's would be.
     * @return list<int> the leads' ids
     */
    public static function seed(Emulator $e, string $token): array
    {
        $field = static fn (array $def): int => $e->api($token, 'POST', '/api/v4/leads/custom_fields', [$def])['_embedded']['custom_fields'][0]['id'];
        $fields = [
            'city' => $field(['name' => 'Город', 'type' => 'text']),
            'address' => $field(['name' => 'Адрес доставки', 'type' => 'textarea']),
            'source' => $field(['name' => 'Источник', 'type' => 'select',
                'enums' => [['value' => 'Сайт', 'sort' => 1], ['value' => 'Звонок', 'sort' => 2], ['value' => 'Выставка', 'sort' => 3]]]),
            'manager' => $field(['name' => 'Менеджер', 'type' => 'text']),
        ];
        $cities = ['Москва', 'Санкт-Петербург', 'Новосибирск', 'Екатеринбург', 'Казань', 'Нижний Новгород'];
        $names = ['Иван', 'Мария', 'Алексей', 'Ольга', 'Дмитрий', 'Екатерина'];
        $surnames = ['Иванов', 'Смирнова', 'Кузнецов', 'Попова', 'Соколов', 'Лебедева'];
        $contacts = [];
        for ($i = 0; $i < 250; $i++) {
            $contacts[] = [
                'first_name' => $names[$i % 6], 'last_name' => $surnames[$i % 6] . " №$i",
                'custom_fields_values' => [
                    ['field_code' => 'PHONE', 'values' => [['value' => sprintf('+7 912 %03d-%02d-%02d', $i, $i % 100, ($i * 7) % 100), 'enum_code' => 'WORK']]],
                    ['field_code' => 'EMAIL', 'values' => [['value' => "client$i@пример.рф", 'enum_code' => 'WORK']]],
                    ['field_code' => 'POSITION', 'values' => [['value' => 'Руководитель отдела закупок']]],
                ],
            ];
        }
        $contactIds = array_column($e->api($token, 'POST', '/api/v4/contacts', $contacts)['_embedded']['contacts'], 'id');
        $leads = [];
        foreach ($contactIds as $i => $contactId) {
            $leads[] = [
                'name' => "Заявка с сайта №$i: поставка оборудования для склада", 'price' => 15000 + 250 * $i,
                'pipeline_id' => 1001, 'status_id' => 10001,
                'custom_fields_values' => [
                    ['field_id' => $fields['city'], 'values' => [['value' => $cities[$i % 6]]]],
                    ['field_id' => $fields['address'], 'values' => [['value' => "г. {$cities[$i % 6]}, ул. Ленина, д. " . (1 + $i % 90) . ', офис ' . (100 + $i)]]],
                    ['field_id' => $fields['source'], 'values' => [['value' => ['Сайт', 'Звонок', 'Выставка'][$i % 3]]]],
                    ['field_id' => $fields['manager'], 'values' => [['value' => 'Петров Пётр Петрович']]],
                ],
                '_embedded' => ['contacts' => [['id' => $contactId]], 'tags' => [['name' => 'сайт']]],
            ];
        }
        return array_column($e->api($token, 'POST', '/api/v4/leads', $leads)['_embedded']['leads'], 'id');
    }

    public function run(): Section
    {
        $e = $this->c->emulator;
        $rounds = $this->c->quick ? 3 : 9;
        $token = $this->c->tokenFile('pages');

        // How much of a page's round trip is the emulator's own work: the
        // live page (built from its store) against the same bytes pinned.
        $live = $e->http('GET', self::PATH, null, ['Authorization' => 'Bearer ' . $this->c->pair['access_token']]);
        if ($live['status'] !== 200 || count($live['json']['_embedded']['leads'] ?? []) !== 250) {
            throw new \RuntimeException('the emulator did not answer a page of 250 leads: ' . $live['status']);
        }
        $fetch = fn (): Summary => Summary::quartiles($this->c->php->run(Php::CURL, 'raw_fetch.php',
            ['token_path' => $token, 'path' => self::PATH, 'fetches' => 30])['us']);
        Context::log('(b) the emulator\'s own time for a page of 250 leads');
        $liveUs = $fetch();
        $e->control('POST', 'faults', ['path' => '/api/v4/leads', 'method' => 'GET', 'action' => 'respond', 'status' => 200,
            'body' => $live['body'], 'content_type' => $live['content_type']]);
        try {
            $pinnedUs = $fetch();
            $kb = strlen($live['body']) / 1024;
            $own = $liveUs->median - $pinnedUs->median;
            $this->emulatorNote = sprintf('The emulator\'s own time for the 250-lead page (%.0f KB): a raw fetch (curl, one handle, '
                . 'nothing decoded, median of 30) took %.2f ms for the live page and %.2f ms for the same bytes pinned, so about '
                . '%.2f ms (%d %% of the live round trip) is the emulator building the page. (b) therefore runs against the '
                . 'pinned answer: the emulator\'s existing `respond` fault rule (`POST /_emulator/faults` with the captured body '
                . 'and content type, unlimited `times`, for `GET /api/v4/leads`), so that what is measured is the client. '
                . 'No change to the emulator was needed for this; it got `GET /_emulator/arrivals` (arrival times in µs) for (f).',
                $kb, $liveUs->median / 1e3, $pinnedUs->median / 1e3, $own / 1e3, (int) round(100 * $own / $liveUs->median));

            Context::log(sprintf('(b) %d pages of 250 leads in one process, %d rounds', self::PAGES, $rounds));
            $settings = ['pages' => self::PAGES, 'token_path' => $token, 'scheme' => 'http', 'amo' => $this->c->httpOptions($token)];
            $res = $this->c->alternate($rounds, fn (string $v) => $this->c->runCounted($v,
                $v === Php::AMO ? 'page_amo.php' : 'page_curl.php', $settings, self::PAGES + 1));
        } finally {
            $e->control('DELETE', 'faults');
        }

        $ms = array_map(static fn (array $r) => Summary::minMax(Context::column($r, 'ms_per_page')), $res);
        $mem = SmallCalls::memory($res);
        $mb = 1 / 1048576;
        $a = Php::AMO;
        $b = Php::CURL;
        return new Section('(b) 250-lead pages, and (g) their memory', [
            new Row('b', sprintf('page of 250 leads with contacts (%.0f KB, Cyrillic custom fields), ms per page (200 pages)', $kb),
                $ms[$b]->format(2), $ms[$a]->format(2), Row::ratio($ms[$a]->median, $ms[$b]->median),
                '≤ 0.8×', $ms[$a]->median <= 0.8 * $ms[$b]->median),
            new Row('g', 'memory of the page loop: PHP peak (`memory_get_peak_usage()`), MB',
                $mem[$b]['php']->format(2, $mb), $mem[$a]['php']->format(2, $mb), Row::ratio($mem[$a]['php']->median, $mem[$b]['php']->median),
                '≤ baseline', $mem[$a]['php']->median <= $mem[$b]['php']->median),
            new Row('g', 'memory of the page loop: RSS high-water mark (VmHWM), MB',
                $mem[$b]['rss']->format(1, $mb), $mem[$a]['rss']->format(1, $mb),
                sprintf('%+.1f MB', ($mem[$a]['rss']->median - $mem[$b]['rss']->median) * $mb),
                '≤ baseline + 2 MB', $mem[$a]['rss']->median <= $mem[$b]['rss']->median + 2 * 1048576),
        ], sprintf(<<<'HOW'
            The emulator is seeded through its real API: four custom fields for leads (text, textarea, select; Cyrillic
            names), 250 contacts (phone, e-mail, position) and 250 leads, each with one contact, a tag and the four custom
            field values (Cyrillic text, a select value). A fresh process per
            variant and round (%1$d rounds, alternating) fetches `%2$s` once untimed, then %3$d times timed, each time the
            same page (the emulator's answer pinned, see above); the figure is the loop's wall time over %3$d.
            Spread: min–max over rounds. Each process must have made %4$d API requests.

            - AmoClient: `$amo->leads()->get(['limit' => 250, 'with' => ['contacts']])` (the list inside `_embedded`),
              `rate_limit=0`.
            - Baseline: one curl handle, the token read once, `json_decode($body, true)['_embedded']['leads']` (the rest of
              the document freed at once).
            - Memory (g): at the end of the same processes (each variant alone in its process): PHP's
              `memory_get_peak_usage()` and VmHWM. Both loops hold one page at a time (the previous one is freed when the
              next is assigned).
            HOW, $rounds, self::PATH, self::PAGES, self::PAGES + 1));
    }
}
