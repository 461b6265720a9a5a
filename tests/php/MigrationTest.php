<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

/**
 * Moving from the official library (issue 11): its verbs that AmoClient
 * lacked, an unknown method as AmoConfigException rather than \Error,
 * pages with their metadata, and the emulator's answers the library's
 * example scripts rely on.
 */
final class MigrationTest extends AmoTestCase
{
    private const PRELUDE = '$amo = AmoClient::getInstance();' . "\n";

    protected function setUp(): void
    {
        parent::setUp();
        $this->seedTokens();
    }

    /** @return array<string, array{string, mixed}> a snippet and what it returns */
    public static function newVerbs(): array
    {
        return [
            'users deactivate/activate, by id or by user' => [
                '$u = $amo->users(); $u->deactivate([1002]); $off = $u->getOne(1002)["rights"]["is_active"];
                 $u->activate([$u->getOne(1002)]); return [$off, $u->getOne(1002)["rights"]["is_active"]];',
                [false, true],
            ],
            'users deactivate, more than ten in turns of ten' => [
                '$u = $amo->users(); $u->deactivate(array_fill(0, 12, 1002));
                 return $u->getOne(1002)["rights"]["is_active"];',
                false,
            ],
            'customers setMode on, then off' => [
                'return [$amo->customers()->setMode("segments"), $amo->account()["customers_mode"],
                         $amo->customers()->setMode("periodicity", false), $amo->account()["customers_mode"]];',
                ['segments', 'segments', null, 'disabled'],
            ],
            'sources delete in a batch' => [
                '$s = $amo->sources()->add([["name" => "a", "external_id" => "a"], ["name" => "b", "external_id" => "b"],
                                             ["name" => "c", "external_id" => "c"]]);
                 $amo->sources()->delete([$s[0]["id"], $s[1]]);
                 return array_column($amo->sources()->get(), "id") === [$s[2]["id"]];',
                true,
            ],
            'lossReasons updateOne and update' => [
                '$r = $amo->lossReasons()->add([["name" => "a"], ["name" => "b"]]);
                 $amo->lossReasons()->updateOne(["id" => $r[0]["id"], "name" => "Дорого"]);
                 $amo->lossReasons()->update([["id" => $r[1]["id"], "name" => "Пропал"]]);
                 return array_column($amo->lossReasons()->get(), "name");',
                ['Дорого', 'Пропал'],
            ],
            'notes getByParentId and getOne under a parent' => [
                '[$a, $b] = $amo->leads()->add([["name" => "a"], ["name" => "b"]]);
                 $n = $amo->notes("leads")->add([
                     ["entity_id" => $a["id"], "note_type" => "common", "params" => ["text" => "a1"]],
                     ["entity_id" => $b["id"], "note_type" => "common", "params" => ["text" => "b1"]],
                     ["entity_id" => $a["id"], "note_type" => "common", "params" => ["text" => "a2"]]]);
                 $one = $amo->notes("leads")->getOne(["id" => $n[2]["id"], "entity_id" => $a["id"]]);
                 $wrong = $amo->notes("leads")->getOne(["id" => $n[2]["id"], "entity_id" => $b["id"]]);
                 return [array_map(fn ($x) => $x["params"]["text"], $amo->notes("leads")->getByParentId($a["id"])),
                         $amo->notes("leads")->getByParentId($b["id"], ["limit" => 5])[0]["params"]["text"],
                         $one["params"]["text"], $wrong];',
                [['a1', 'a2'], 'b1', 'a2', null],
            ],
            'notes pin and unpin' => [
                '$l = $amo->leads()->addOne(["name" => "x"]);
                 $n = $amo->notes("leads")->addOne(["entity_id" => $l["id"], "note_type" => "common", "params" => ["text" => "t"]]);
                 $amo->notes("leads")->pin($n["id"]); $pinned = $amo->notes("leads")->getOne($n["id"])["is_pinned"];
                 $amo->notes("leads")->unpin($n["id"]);
                 return [$pinned, $amo->notes("leads")->getOne($n["id"])["is_pinned"]];',
                [true, false],
            ],
            'leads link, getLinks, unlink (an entity or its id)' => [
                '$l = $amo->leads()->addOne(["name" => "x"]); $c = $amo->contacts()->addOne(["first_name" => "Иван"]);
                 $made = $amo->leads()->link($l, [["to_entity_id" => $c["id"], "to_entity_type" => "contacts"]]);
                 $links = $amo->leads()->getLinks($l["id"]);
                 $amo->leads()->unlink($l["id"], [["to_entity_id" => $c["id"], "to_entity_type" => "contacts"]]);
                 return [$made[0]["to_entity_id"] === $c["id"], array_column($links, "to_entity_type"), $amo->leads()->getLinks($l)];',
                [true, ['contacts'], []],
            ],
            'contacts, companies and customers link too' => [
                '$c = $amo->contacts()->addOne(["first_name" => "Иван"]); $co = $amo->companies()->addOne(["name" => "ООО"]);
                 $cu = $amo->customers()->addOne(["name" => "Покупатель"]);
                 $amo->companies()->link($co, [["to_entity_id" => $c["id"], "to_entity_type" => "contacts"]]);
                 $amo->customers()->link($cu["id"], [["to_entity_id" => $c["id"], "to_entity_type" => "contacts"]]);
                 return [array_column($amo->contacts()->getLinks($c["id"]), "to_entity_type"),
                         count($amo->customers()->getLinks($cu))];',
                [['companies', 'customers'], 1],
            ],
            'leads addOneComplex' => [
                '$c = $amo->leads()->addOneComplex(["name" => "x", "_embedded" => ["contacts" => [["first_name" => "Иван"]]]]);
                 return [is_int($c["id"]), is_int($c["contact_id"]), $c["merged"]];',
                [true, true, false],
            ],
        ];
    }

    /** @dataProvider newVerbs */
    #[DataProvider('newVerbs')]
    public function testNewVerb(string $code, $expected): void
    {
        $this->assertSame($expected, $this->ok(self::PRELUDE . $code));
    }

    /** @return array<string, array{string, string}> a call refused before any request, and what the message names */
    public static function badArguments(): array
    {
        return [
            'activate nobody' => ['$amo->users()->activate([]);', 'userIds'],
            'deactivate a bad id' => ['$amo->users()->deactivate([1002, 0]);', 'userIds[1]'],
            'an unknown customers mode' => ['$amo->customers()->setMode("dynamic");', 'mode'],
            'delete a source without id' => ['$amo->sources()->delete([["name" => "x"]]);', 'ids[0]'],
            'notes of parent 0' => ['$amo->notes("leads")->getByParentId(0);', 'parentId'],
            'a note under no parent' => ['$amo->notes("leads")->getOne(["id" => 5]);', 'id.entity_id'],
            'pin a bad id' => ['$amo->notes("contacts")->pin(-1);', 'id'],
            'update a user' => ['$amo->users()->updateOne(["id" => 1002, "name" => "x"]);', 'updateOne'],
            'link nothing' => ['$amo->leads()->link(5, []);', 'links'],
            'links of no entity' => ['$amo->contacts()->getLinks(["name" => "x"]);', 'entity'],
            'getPage of a list amoCRM does not list' => ['$amo->calls()->getPage();', 'getPage'],
        ];
    }

    /** @dataProvider badArguments */
    #[DataProvider('badArguments')]
    public function testBadArgumentIsRefusedBeforeAnyRequest(string $code, string $named): void
    {
        $e = $this->fails('AmoConfigException', self::PRELUDE . $code);
        $this->assertStringContainsString("`$named`", $e['message']);
        $this->assertSame([], $this->emu->stats()['api_calls'] ?? [], 'no request was sent');
    }

    /** @return array<string, array{string, string}> every service accessor, and how messages name it */
    public static function services(): array
    {
        return [
            'leads' => ['$amo->leads()', 'leads()'],
            'contacts' => ['$amo->contacts()', 'contacts()'],
            'companies' => ['$amo->companies()', 'companies()'],
            'customers' => ['$amo->customers()', 'customers()'],
            'tasks' => ['$amo->tasks()', 'tasks()'],
            'notes' => ['$amo->notes("leads")', 'notes(leads)'],
            'tags' => ['$amo->tags("contacts")', 'tags(contacts)'],
            'pipelines' => ['$amo->pipelines()', 'pipelines()'],
            'statuses' => ['$amo->statuses(1001)', 'statuses(1001)'],
            'customFields' => ['$amo->customFields("companies")', 'customFields(companies)'],
            'lossReasons' => ['$amo->lossReasons()', 'lossReasons()'],
            'users' => ['$amo->users()', 'users()'],
            'roles' => ['$amo->roles()', 'roles()'],
            'webhooks' => ['$amo->webhooks()', 'webhooks()'],
            'unsorted' => ['$amo->unsorted()', 'unsorted()'],
            'catalogs' => ['$amo->catalogs()', 'catalogs()'],
            'catalogElements' => ['$amo->catalogElements(5)', 'catalogElements(5)'],
            'events' => ['$amo->events()', 'events()'],
            'sources' => ['$amo->sources()', 'sources()'],
            'links' => ['$amo->links("leads")', 'links(leads)'],
            'calls' => ['$amo->calls()', 'calls()'],
            'widgets' => ['$amo->widgets()', 'widgets()'],
            'shortLinks' => ['$amo->shortLinks()', 'shortLinks()'],
            'currencies' => ['$amo->currencies()', 'currencies()'],
            'a context user\'s leads' => ['$amo->withContextUser(1002)->leads()', 'leads()'],
        ];
    }

    /** @dataProvider services */
    #[DataProvider('services')]
    public function testAnUnknownMethodIsAnAmoConfigExceptionNamingVerbAndService(string $service, string $label): void
    {
        $r = $this->ok(self::PRELUDE . <<<PHP
            \$s = $service;
            try {
                \$s->syncOne(['id' => 1], ['contacts']);
                \$caught = null;
            } catch (AmoException \$e) {   // a catch block ported by renaming
                \$caught = [get_class(\$e), \$e->getMessage(), \$e->getTitle()];
            }
            \$offered = array_values(array_filter(
                array_map(fn (\$m) => \$m->getName(), (new ReflectionClass(\$s))->getMethods(ReflectionMethod::IS_PUBLIC)),
                fn (\$n) => !str_starts_with(\$n, '__')));
            return ['caught' => \$caught, 'class' => get_class(\$s), 'offered' => \$offered,
                    'exists' => method_exists(\$s, 'syncOne'), 'after' => 'the process went on'];
            PHP);
        [$class, $message, $title] = $r['caught'];
        $this->assertSame('AmoConfigException', $class);
        $this->assertSame('Invalid argument', $title);
        $this->assertStringContainsString("$label has no method syncOne(): its methods are ", $message);
        // The methods named are the class's own, less those amoCRM refuses here.
        preg_match('/its methods are (.*)$/', $message, $m);
        $named = explode(', ', $m[1]);
        $this->assertNotEmpty($named);
        $this->assertSame([], array_diff($named, $r['offered']), 'every method named exists');
        $this->assertFalse($r['exists'], 'method_exists still tells the truth');
        $this->assertSame('the process went on', $r['after']);
        $this->assertSame([], $this->emu->stats()['api_calls'] ?? [], 'no request was sent');
    }

    public function testRefusedSharedVerbsAreLeftOutOfTheMessage(): void
    {
        $r = $this->ok(self::PRELUDE . <<<'PHP'
            $msg = [];
            foreach (['users' => $amo->users(), 'events' => $amo->events(), 'lossReasons' => $amo->lossReasons()] as $k => $s) {
                try { $s->nope(); } catch (AmoConfigException $e) { $msg[$k] = $e->getMessage(); }
            }
            return $msg;
            PHP);
        $this->assertStringContainsString('activate, deactivate', $r['users']);
        $this->assertStringNotContainsString('updateOne', $r['users']);
        $this->assertStringContainsString('its methods are get, iterate, getPage, nextPage, prevPage, getOne', $r['events']);
        $this->assertStringNotContainsString('add', $r['events']);
        $this->assertStringContainsString('updateOne', $r['lossReasons']);
    }

    public function testEveryServiceClassOfTheExtensionHasCall(): void
    {
        $r = $this->ok(<<<'PHP'
            $out = [];
            foreach ((new ReflectionExtension('amocrm'))->getClasses() as $name => $c) {
                if (str_ends_with($name, 'Service')) {
                    $m = $c->getMethod('__call');
                    $out[$name] = [$m->isPublic(), $m->getNumberOfParameters(), (string) $m->getParameters()[0]->getType()];
                }
            }
            return $out;
            PHP);
        $this->assertGreaterThanOrEqual(11, count($r), "AmoEntityService, AmoLeadsService, … and the five of issue 11");
        foreach ($r as $class => $shape) {
            $this->assertSame([true, 2, 'string'], $shape, $class);
        }
    }

    /** @return array<string, array{string, string}> */
    public static function unknownOnClient(): array
    {
        return [
            'a service it lacks' => ['$amo->deals();', 'AmoClient has no service or method deals()'],
            'a verb called on the client' => ['$amo->getLeads(["limit" => 5]);', 'AmoClient has no service or method getLeads()'],
            'on a context user\'s handle' => ['$amo->withContextUser(1002)->foo();', 'AmoClient has no service or method foo()'],
        ];
    }

    /** @dataProvider unknownOnClient */
    #[DataProvider('unknownOnClient')]
    public function testAnUnknownMethodOnAmoClient(string $code, string $says): void
    {
        $r = $this->ok(self::PRELUDE . "try { $code } catch (AmoException \$e) { return [get_class(\$e), \$e->getMessage(), \$amo->leads()->get()]; }");
        $this->assertSame('AmoConfigException', $r[0]);
        $this->assertStringContainsString($says, $r[1]);
        $this->assertStringContainsString('leads, contacts', $r[1], 'the services are listed');
        $this->assertSame([], $r[2], 'the process went on and the client still works');
    }

    public function testPagesWithTheirMetadataWalkForwardAndBack(): void
    {
        $r = $this->ok(self::PRELUDE . <<<'PHP'
            $amo->leads()->add(array_map(fn ($i) => ['name' => "lead $i"], range(1, 5)));
            $walk = [];
            $page = $amo->leads()->getPage(['limit' => 2, 'order' => ['id' => 'asc']]);
            $first = $page;
            while ($page !== null) {
                $walk[] = [$page['_page'], array_column($page['_embedded']['leads'], 'name'), isset($page['_links']['prev'])];
                $last = $page;
                $page = $amo->leads()->nextPage($page);
            }
            $back = $amo->leads()->prevPage($last);
            $fields = $amo->customFields('leads')->getPage(['limit' => 2]);
            return ['walk' => $walk, 'back' => array_column($back['_embedded']['leads'], 'name'),
                    'before_first' => $amo->leads()->prevPage($first),
                    'self' => $first['_links']['self']['href'],
                    'fields' => [$fields['_total_items'], $fields['_page_count'], count($fields['_embedded']['custom_fields'])],
                    'empty' => $amo->tasks()->getPage()];
            PHP);
        $this->assertSame([
            [1, ['lead 1', 'lead 2'], false],
            [2, ['lead 3', 'lead 4'], true],
            [3, ['lead 5'], true],
        ], $r['walk']);
        $this->assertSame(['lead 3', 'lead 4'], $r['back']);
        $this->assertNull($r['before_first']);
        $this->assertStringContainsString('/api/v4/leads?', $r['self']);
        $this->assertSame([5, 3, 2], $r['fields'], 'the 5 seeded utm fields, 2 a page');
        $this->assertNull($r['empty'], '204: no page');
    }

    /** @return array<string, array{string, string}> a page whose link must not be followed */
    public static function foreignLinks(): array
    {
        return [
            'another host' => ['http://evil.example/api/v4/leads?page=2', 'another host'],
            'another list' => ['{self}/api/v4/contacts?page=2', 'is not a page of leads()'],
            'another port' => ['http://127.0.0.1:1/api/v4/leads?page=2', 'another host'],
        ];
    }

    /** @dataProvider foreignLinks */
    #[DataProvider('foreignLinks')]
    public function testAPageLinkToAnotherHostOrListIsRefused(string $href, string $says): void
    {
        $href = str_replace('{self}', 'http://' . $this->emu->referer(), $href);
        $e = $this->fails('AmoConfigException', self::PRELUDE
            . 'return $amo->leads()->nextPage(["_links" => ["next" => ["href" => ' . var_export($href, true) . ']]]);');
        $this->assertStringContainsString('page._links.next.href', $e['message']);
        $this->assertStringContainsString($says, $e['message']);
        $this->assertSame([], $this->emu->stats()['api_calls'] ?? [], 'nothing was fetched');
    }

    public function testFidelityItemsRoundTripThroughTheExtension(): void
    {
        $r = $this->ok(self::PRELUDE . <<<'PHP'
            $fields = $amo->customFields('leads')->add([
                ['name' => 'Категория', 'type' => 'category',
                 'nested' => [['value' => 'Авто', 'request_id' => 'a'], ['value' => 'Легковые', 'parent_request_id' => 'a']]],
                ['name' => 'Цвет', 'type' => 'select', 'enums' => [['value' => 'Красный', 'code' => 'RED'], ['value' => 'Синий']]],
            ]);
            [$cat, $color] = $fields;
            $lead = $amo->leads()->addOne(['name' => 'x', '_embedded' => ['tags' => [['name' => 'a'], ['name' => 'b']]],
                'custom_fields_values' => [['field_id' => $color['id'], 'values' => [['enum_code' => 'RED']]]]]);
            $tagged = count($amo->leads()->getOne($lead['id'])['_embedded']['tags']);
            $amo->leads()->updateOne(['id' => $lead['id'], '_embedded' => ['tags' => null]]);
            $got = $amo->leads()->getOne($lead['id']);
            $products = $amo->catalogs()->addOne(['name' => 'Товары', 'type' => 'products']);
            try { $amo->catalogs()->addOne(['name' => 'Ещё', 'type' => 'products']); $second = 'created'; }
            catch (AmoValidationException $e) { $second = $e->getValidationErrors()[0]['errors'][0]['path']; }
            $u = $amo->unsorted()->addForms([['source_uid' => 'f', 'source_name' => 'Сайт',
                'metadata' => ['form_id' => 'f', 'form_name' => 'Заявка', 'form_page' => 'https://site.example',
                               'form_sent_at' => time(), 'ip' => '127.0.0.1'],
                '_embedded' => ['leads' => [['name' => 'Заявка']], 'contacts' => [['name' => 'Клиент']]]]]);
            $accepted = $amo->unsorted()->accept($u[0]['uid']);
            return [
                'cat' => [$cat['type'], $cat['nested'][1]['parent_id'] === $cat['nested'][0]['id'], $cat['request_id']],
                'enum' => [$color['enums'][0]['code'], $color['enums'][1]['code']],
                'value' => $got['custom_fields_values'][0]['values'][0],
                'tags' => [$tagged, $got['_embedded']['tags']],
                'catalog' => [$amo->catalogs()->getOne($products['id'])['type'], $second],
                'accepted' => array_keys($accepted),
                'accepted_ids' => [is_int($accepted['_embedded']['leads'][0]['id']), is_int($accepted['_embedded']['contacts'][0]['id'])],
            ];
            PHP);
        $this->assertSame(['category', true, '0'], $r['cat']);
        $this->assertSame(['RED', null], $r['enum']);
        $this->assertSame('Красный', $r['value']['value']);
        $this->assertSame('RED', $r['value']['enum_code']);
        $this->assertSame([2, []], $r['tags']);
        $this->assertSame(['products', 'type'], $r['catalog']);
        foreach (['uid', 'account_id', 'pipeline_id', 'category', 'created_at', 'accepted_at', '_embedded', '_links'] as $k) {
            $this->assertContains($k, $r['accepted']);
        }
        $this->assertSame([true, true], $r['accepted_ids']);
    }
}
