<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** The entity services against the emulator: the tasks controllers do every day. */
final class ServicesTest extends AmoTestCase
{
    protected function setUp(): void
    {
        parent::setUp();
        $this->seedTokens();
    }

    public function testEverydayTasks(): void
    {
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $since = time() - 5;
            // Create a lead with a contact and a company in one call.
            $complex = $amo->leads()->addComplex([[
                'name' => 'Заявка с сайта', 'price' => 5000,
                '_embedded' => [
                    'contacts' => [['first_name' => 'Иван', 'custom_fields_values' => [
                        ['field_code' => 'PHONE', 'values' => [['value' => '+7 900 123-45-67', 'enum_code' => 'WORK']]],
                        ['field_code' => 'EMAIL', 'values' => [['value' => 'ivan@example.com', 'enum_code' => 'WORK']]],
                    ]]],
                    'companies' => [['name' => 'ООО Ромашка']],
                ],
            ]]);
            $leadId = $complex[0]['id'];
            // Find the contact by phone.
            $found = $amo->contacts()->get(['query' => '79001234567']);
            // Move the lead to "won".
            $moved = $amo->leads()->updateOne(['id' => $leadId, 'status_id' => 142]);
            // Add a note and a task.
            $note = $amo->notes('leads')->addOne(['entity_id' => $leadId, 'note_type' => 'common', 'params' => ['text' => 'Перезвонить']]);
            $task = $amo->tasks()->addOne(['text' => 'Позвонить клиенту', 'complete_till' => time() + 3600, 'entity_id' => $leadId, 'entity_type' => 'leads']);
            $done = $amo->tasks()->updateOne(['id' => $task['id'], 'is_completed' => true, 'result' => ['text' => 'Дозвонились']]);
            // Walk all leads updated since a date.
            $walked = [];
            foreach ($amo->leads()->iterate(['filter' => ['updated_at' => ['from' => $since]]]) as $lead) {
                $walked[] = $lead['id'];
            }
            // A second submission with the same phone is merged into the contact.
            $again = $amo->leads()->addComplex([['name' => 'Повтор', '_embedded' => ['contacts' => [['first_name' => 'Иван', 'custom_fields_values' => [
                ['field_code' => 'PHONE', 'values' => [['value' => '+7 900 123-45-67']]]]]]]]]);
            return [
                'complex' => $complex[0], 'found' => array_column($found, 'id'), 'moved' => $moved['id'],
                'lead' => $amo->leads()->getOne($leadId, ['contacts']),
                'note' => $amo->notes('leads')->getOne($note['id']), 'task' => $amo->tasks()->getOne($task['id']),
                'walked' => $walked, 'again' => $again[0],
            ];
            PHP);
        $c = $r['complex'];
        $this->assertSame(['0'], $c['request_id']);
        $this->assertFalse($c['merged']);
        $this->assertIsInt($c['contact_id']);
        $this->assertIsInt($c['company_id']);
        $this->assertSame([$c['contact_id']], $r['found']);
        $this->assertSame($c['id'], $r['moved']);
        $this->assertSame(142, $r['lead']['status_id']);
        $this->assertSame('Перезвонить', $r['note']['params']['text']);
        $this->assertTrue($r['task']['is_completed']);
        $this->assertContains($c['id'], $r['walked']);
        $this->assertTrue($r['again']['merged']);
        $this->assertSame($c['contact_id'], $r['again']['contact_id']);
    }

    public function testBatchOf600IsSplitAndReassembledInOrder(): void
    {
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $items = [];
            for ($i = 0; $i < 600; $i++) { $items[] = ['name' => "lead #$i", 'price' => $i]; }
            $items[7]['request_id'] = 'mine';
            $created = $amo->leads()->add($items);
            $byId = [];
            foreach ($amo->leads()->iterate(['limit' => 250]) as $lead) { $byId[$lead['id']] = $lead['price']; }
            return [
                'count' => count($created),
                'request_ids' => array_column($created, 'request_id'),
                'prices_in_input_order' => array_map(static fn ($c) => $byId[$c['id']], $created),
            ];
            PHP);
        $this->assertSame(600, $r['count']);
        $expected = array_map('strval', range(0, 599));
        $expected[7] = 'mine';
        $this->assertSame($expected, $r['request_ids']);
        $this->assertSame(range(0, 599), $r['prices_in_input_order']);
        $stats = $this->emu->stats();
        $this->assertSame(12, $stats['api_requests_by_method']['POST'], '600 items in batches of 50');
        $this->assertSame(3, $stats['api_requests_by_method']['GET'], '600 leads in pages of 250');
    }

    public function testPaginationFollowsNextLinksLazily(): void
    {
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $items = [];
            for ($i = 0; $i < 7; $i++) { $items[] = ['name' => "l$i"]; }
            $amo->leads()->add($items);
            $it = $amo->leads()->iterate(['limit' => 3, 'order' => ['id' => 'asc']]);
            $seen = [];
            foreach ($it as $k => $lead) { $seen[$k] = $lead['name']; if ($k === 0) { $afterFirst = true; } }
            $page = $amo->leads()->get(['limit' => 3, 'page' => 3]);
            $beyond = $amo->leads()->get(['limit' => 3, 'page' => 4]);
            $again = iterator_to_array($it); // rewinding fetches the first page again
            return ['seen' => $seen, 'page3' => array_column($page, 'name'), 'beyond' => $beyond, 'again' => count($again)];
            PHP);
        $this->assertSame(['l0', 'l1', 'l2', 'l3', 'l4', 'l5', 'l6'], $r['seen']);
        $this->assertSame(['l6'], $r['page3']);
        $this->assertSame([], $r['beyond'], '204 is an empty list');
        $this->assertSame(7, $r['again']);
    }

    public function testBadParametersAreRefusedBeforeAnyRequest(): void
    {
        foreach ([
            "AmoClient::getInstance()->leads()->get(['limit' => 251]);" => '`limit`',
            "AmoClient::getInstance()->leads()->get(['page' => 0]);" => '`page`',
            "AmoClient::getInstance()->leads()->get(['with' => [['x']]]);" => '`with`',
            "AmoClient::getInstance()->notes('deals');" => '`entityType`',
            "AmoClient::getInstance()->statuses(0);" => '`pipelineId`',
            "AmoClient::getInstance()->events()->add([['type' => 'x']]);" => 'does not support add()',
            "AmoClient::getInstance()->currencies()->getOne(1);" => 'does not support getOne()',
            "AmoClient::getInstance()->leads()->update([['name' => 'no id']]);" => '`items[0].id`',
            "AmoClient::getInstance()->leads()->add(['not a list of entities']);" => '`items[0]`',
            "AmoClient::getInstance()->leads()->getOne('../account');" => '`id`',
        ] as $code => $named) {
            $e = $this->fails('AmoConfigException', $code);
            $this->assertStringContainsString($named, $e['message'], $code);
        }
        $this->assertSame([], $this->emu->stats()['api_calls']);
    }

    public function testEveryServiceAgainstTheEmulator(): void
    {
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $out = [];
            $contact = $amo->contacts()->addOne(['name' => 'Пётр']);
            $company = $amo->companies()->addOne(['name' => 'Acme']);
            $out['contacts'] = $amo->contacts()->updateOne(['id' => $contact['id'], 'name' => 'Пётр И.'])['id'] === $contact['id'];
            $out['companies'] = count($amo->companies()->get()) === 1;
            $customer = $amo->customers()->addOne(['name' => 'Постоянный']);
            $out['customers'] = $amo->customers()->getOne($customer['id'])['name'];
            foreach (['leads', 'contacts', 'companies', 'customers'] as $type) {
                $entityId = ['leads' => $amo->leads()->addOne(['name' => 'n'])['id'], 'contacts' => $contact['id'], 'companies' => $company['id'], 'customers' => $customer['id']][$type];
                $amo->notes($type)->add([['entity_id' => $entityId, 'note_type' => 'common', 'params' => ['text' => "note on $type"]]]);
                $out['notes'][$type] = array_column(array_column($amo->notes($type)->get(), 'params'), 'text');
                $amo->tags($type)->add([['name' => "tag-$type"]]);
                $out['tags'][$type] = array_column($amo->tags($type)->get(), 'name');
            }
            $pipelines = $amo->pipelines()->get();
            $out['pipeline_statuses'] = array_column($pipelines[0]['_embedded']['statuses'], 'id');
            $pipeline = $amo->pipelines()->addOne(['name' => 'Вторая', '_embedded' => ['statuses' => [['name' => 'Новый', 'sort' => 10]]]]);
            $status = $amo->statuses($pipeline['id'])->addOne(['name' => 'Ждём оплату', 'sort' => 20]);
            $out['status'] = $amo->statuses($pipeline['id'])->updateOne(['id' => $status['id'], 'name' => 'Оплата'])['id'] === $status['id'];
            $amo->statuses($pipeline['id'])->deleteOne($status['id']);
            $out['status_deleted'] = $amo->statuses($pipeline['id'])->getOne($status['id']);
            $out['custom_fields'] = array_column($amo->customFields('contacts')->get(), 'code');
            $reason = $amo->lossReasons()->addOne(['name' => 'Дорого']);
            $out['loss_reasons'] = $amo->lossReasons()->getOne($reason['id'])['name'];
            $out['users'] = array_column($amo->users()->get(), 'id');
            $role = $amo->roles()->addOne(['name' => 'Менеджер']);
            $out['roles'] = $amo->roles()->updateOne(['id' => $role['id'], 'name' => 'Старший менеджер'])['id'] === $role['id'];
            $hook = $amo->webhooks()->subscribe('https://example.com/hook', ['add_lead', 'status_lead']);
            $out['webhook'] = [$hook['destination'], $hook['settings'], count($amo->webhooks()->get())];
            $amo->webhooks()->unsubscribe('https://example.com/hook');
            $out['webhook_after'] = $amo->webhooks()->get();
            $unsorted = $amo->unsorted()->addForms([['source_uid' => 'form-1', 'source_name' => 'Сайт', 'metadata' => ['form_id' => 'f1', 'form_name' => 'Заявка', 'form_page' => 'https://example.com', 'form_sent_at' => time(), 'ip' => '127.0.0.1'],
                '_embedded' => ['leads' => [['name' => 'Из формы']]]]]);
            $uid = $unsorted[0]['uid'];
            $out['unsorted_one'] = $amo->unsorted()->getOne($uid)['uid'] === $uid;
            $accepted = $amo->unsorted()->accept($uid, ['status_id' => 10001]);
            $out['unsorted_accepted'] = isset($accepted['_embedded']['leads'][0]['id']);
            $second = $amo->unsorted()->addSip([['source_uid' => 'sip-1', 'source_name' => 'АТС', 'metadata' => ['from' => '+79000000000', 'phone' => '+74950000000', 'called_at' => time(), 'duration' => 30, 'link' => 'https://example.com/rec.mp3', 'service_code' => 'sip', 'is_call_event_needed' => false, 'uniq' => 'u-1'],
                '_embedded' => ['leads' => [['name' => 'Звонок']]]]]);
            $amo->unsorted()->decline($second[0]['uid']);
            $out['unsorted_summary'] = $amo->unsorted()->summary();
            $catalog = $amo->catalogs()->addOne(['name' => 'Товары']);
            $element = $amo->catalogElements($catalog['id'])->addOne(['name' => 'Чайник']);
            $out['elements'] = array_column($amo->catalogElements($catalog['id'])->get(), 'name');
            $out['events'] = count($amo->events()->get()) > 0;
            $source = $amo->sources()->addOne(['name' => 'Сайт', 'external_id' => 'site-1']);
            $amo->sources()->deleteOne($source['id']);
            $out['sources'] = $amo->sources()->get();
            $leadId = $amo->leads()->addOne(['name' => 'для связей'])['id'];
            $amo->links('leads')->link([['entity_id' => $leadId, 'to_entity_id' => $contact['id'], 'to_entity_type' => 'contacts']]);
            $out['links'] = array_column($amo->links('leads')->get(['filter' => ['entity_id' => [$leadId]]]), 'to_entity_id');
            $amo->links('leads')->unlink([['entity_id' => $leadId, 'to_entity_id' => $contact['id'], 'to_entity_type' => 'contacts']]);
            $out['links_after'] = $amo->links('leads')->get(['filter' => ['entity_id' => [$leadId]]]);
            $amo->contacts()->addOne(['name' => 'Звонящий', 'custom_fields_values' => [['field_code' => 'PHONE', 'values' => [['value' => '+79001112233']]]]]);
            $call = ['direction' => 'inbound', 'duration' => 10, 'source' => 'test', 'link' => 'https://example.com/c1.mp3', 'call_status' => 4, 'created_by' => 1001];
            $out['calls'] = $amo->calls()->add([$call + ['phone' => '+79001112233', 'uniq' => 'c1'], $call + ['phone' => '+70000000000', 'uniq' => 'c2']]);
            $out['widgets'] = $amo->widgets()->getByCode('amo_emulator_widget')['code'];
            $out['short_links'] = str_starts_with($amo->shortLinks()->addOne(['url' => 'https://example.com/page', 'metadata' => ['entity_type' => 'contacts', 'entity_id' => $contact['id']]])['url'], 'https://');
            $out['currencies'] = array_column($amo->currencies()->get(), 'code');
            $out['account'] = array_keys($amo->account(['amojo_id', 'task_types'])['_embedded'] ?? []);
            return $out;
            PHP);
        $this->assertTrue($r['contacts']);
        $this->assertTrue($r['companies']);
        $this->assertSame('Постоянный', $r['customers']);
        foreach (['leads', 'contacts', 'companies', 'customers'] as $type) {
            $this->assertSame(["note on $type"], $r['notes'][$type]);
            $this->assertContains("tag-$type", $r['tags'][$type]);
        }
        $this->assertContains(142, $r['pipeline_statuses']);
        $this->assertContains(143, $r['pipeline_statuses']);
        $this->assertTrue($r['status']);
        $this->assertNull($r['status_deleted']);
        $this->assertContains('PHONE', $r['custom_fields']);
        $this->assertSame('Дорого', $r['loss_reasons']);
        $this->assertContains(1001, $r['users']);
        $this->assertTrue($r['roles']);
        $this->assertSame(['https://example.com/hook', ['add_lead', 'status_lead'], 1], $r['webhook']);
        $this->assertSame([], $r['webhook_after']);
        $this->assertTrue($r['unsorted_one']);
        $this->assertTrue($r['unsorted_accepted']);
        $this->assertArrayHasKey('total', $r['unsorted_summary']);
        $this->assertSame(['Чайник'], $r['elements']);
        $this->assertTrue($r['events']);
        $this->assertSame([], $r['sources']);
        $this->assertCount(1, $r['links']);
        $this->assertSame([], $r['links_after']);
        $this->assertCount(2, $r['calls'], 'one result per call, in input order');
        $this->assertSame('contacts', $r['calls'][0]['entity_type']);
        $this->assertSame('1', $r['calls'][1]['request_id']);
        $this->assertSame(404, $r['calls'][1]['status'], 'the unmatched phone is reported in its place');
        $this->assertSame('amo_emulator_widget', $r['widgets']);
        $this->assertTrue($r['short_links']);
        $this->assertContains('RUB', $r['currencies']);
        $this->assertContains('task_types', $r['account']);
    }

    public function testContextUserIsSentWithServiceCalls(): void
    {
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance()->withContextUser(1002);
            $id = $amo->leads()->addOne(['name' => 'as user 1002'])['id'];
            return $amo->leads()->getOne($id)['created_by'];
            PHP);
        $this->assertSame(1002, $r);
        $this->assertSame(2, $this->emu->stats()['context_user_requests']);
    }
}
