<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

/**
 * The eleven services of issue 11 against the emulator: a case per service
 * and verb, each asserting what a user relies on (what was created comes
 * back, an action changes state visibly, a verb amoCRM lacks is refused).
 */
final class MoreServicesTest extends AmoTestCase
{
    protected function setUp(): void
    {
        parent::setUp();
        $this->seedTokens();
    }

    /** A catalog with a price field and an element, and a lead and a customer. */
    private const FIXTURE = <<<'PHP'
        $amo = AmoClient::getInstance();
        $cat = $amo->catalogs()->addOne(['name' => 'Товары'])['id'];
        $price = $amo->customFields("catalogs/$cat")->addOne(['name' => 'Цена', 'type' => 'price'])['id'];
        $el = $amo->catalogElements($cat)->addOne(['name' => 'Чайник'])['id'];
        $lead = $amo->leads()->addOne(['name' => 'Сделка'])['id'];
        $cust = $amo->customers()->addOne(['name' => 'Покупатель'])['id'];

        PHP;

    /**
     * @dataProvider workflows
     * @param mixed $expected
     */
    #[DataProvider('workflows')]
    public function testWorkflow(string $code, $expected): void
    {
        $this->assertSame($expected, $this->ok(self::FIXTURE . $code));
    }

    public static function workflows(): array
    {
        return [
            'products: settings, updateSettings turns the products catalog on' => [
                '$p = $amo->products(); $before = $p->settings()["is_enabled"];
                 $after = $p->updateSettings(["is_enabled" => true])["is_enabled"];
                 return [$before, $after, $p->settings()["is_enabled"], in_array("products", array_column($amo->catalogs()->get(), "type"), true)];',
                [false, true, true, true],
            ],
            'links: a product on a lead with quantity and price, in links and with=catalog_elements' => [
                '$amo->links("leads")->link([["entity_id" => $lead, "to_entity_id" => $el, "to_entity_type" => "catalog_elements",
                     "metadata" => ["catalog_id" => $cat, "quantity" => 2, "price_id" => $price]]]);
                 $m = $amo->links("leads")->get(["filter" => ["entity_id" => [$lead], "to_entity_type" => "catalog_elements"]])[0]["metadata"];
                 $e = $amo->leads()->getOne($lead, ["catalog_elements"])["_embedded"]["catalog_elements"][0];
                 return [$m["quantity"], $m["catalog_id"] === $cat, $m["price_id"] === $price,
                         $e["id"] === $el, $e["metadata"]["quantity"], $e["metadata"]["price_id"] === $price];',
                [2, true, true, true, 2, true],
            ],
            'links: a price id that is no price field of the catalog is amoCRM\'s validation error' => [
                'try { $amo->links("leads")->link([["entity_id" => $lead, "to_entity_id" => $el, "to_entity_type" => "catalog_elements",
                     "metadata" => ["catalog_id" => $cat, "quantity" => 2, "price_id" => $price + 999]]]); return "linked"; }
                 catch (AmoValidationException $e) { return [$e->getValidationErrors()[0]["errors"][0]["path"], $amo->links("leads")->get(["filter" => ["entity_id" => [$lead]]])]; }',
                ['metadata.price_id', []],
            ],
            'transactions: add per customer, get, getOne with catalog elements, the customer\'s ltv' => [
                '$t = $amo->transactions()->add($cust, [
                     ["price" => 1500, "comment" => "Покупка", "_embedded" => ["catalog_elements" => [["id" => $el, "metadata" => ["catalog_id" => $cat, "quantity" => 3]]]]],
                     ["price" => 500]]);
                 $one = $amo->transactions()->getOne($t[0]["id"], ["catalog_elements"]);
                 $c = $amo->customers()->getOne($cust);
                 return [array_column($t, "request_id"), count($amo->transactions()->get()), $one["comment"], $one["customer_id"] === $cust,
                         $one["_embedded"]["catalog_elements"][0]["metadata"]["quantity"], $c["ltv"], $c["purchases_count"], $c["average_check"]];',
                [['0', '1'], 2, 'Покупка', true, 3, 2000, 2, 1000],
            ],
            'transactions: addOne, then deleteOne takes the purchase back' => [
                '$a = $amo->transactions()->addOne($cust, ["price" => 700], false);
                 $b = $amo->transactions()->addOne($cust, ["price" => 300]);
                 $amo->transactions()->deleteOne($cust, $b["id"]);
                 return [array_column($amo->transactions()->get(), "id") === [$a["id"]], $amo->transactions()->getOne($b["id"]), $amo->customers()->getOne($cust)["ltv"]];',
                [true, null, 700],
            ],
            'transactions: a purchase without a price is amoCRM\'s validation error' => [
                'try { $amo->request("POST", "/api/v4/customers/$cust/transactions", null, [["comment" => "без цены"]]); return "added"; }
                 catch (AmoValidationException $e) { return [$e->getValidationErrors()[0]["errors"][0]["path"], $amo->transactions()->get()]; }',
                ['price', []],
            ],
            'customersBonusPoints: earn, redeem, and redeeming more than the balance is refused' => [
                '$b = $amo->customersBonusPoints(); $earned = $b->earnPoints($cust, 100); $left = $b->redeemPoints($cust, 30);
                 try { $b->redeemPoints($cust, 500); $over = "redeemed"; } catch (AmoValidationException $e) { $over = $e->getValidationErrors()[0]["errors"][0]["path"]; }
                 return [$earned, $left, $over, $b->earnPoints($cust, 1)];',
                [100, 70, 'redeem', 71],
            ],
            'customersBonusPoints: an unknown customer is 404' => [
                'try { $amo->customersBonusPoints()->earnPoints(999999, 5); return "earned"; } catch (AmoApiException $e) { return $e->getErrorCode(); }',
                404,
            ],
            'customersSegments: addOne, getOne, updateOne, get, deleteOne' => [
                '$s = $amo->customersSegments(); $id = $s->addOne(["name" => "VIP", "color" => "ff5376"])["id"];
                 $s->updateOne(["id" => $id, "name" => "Постоянные"]);
                 $one = $s->getOne($id); $names = array_column($s->get(), "name");
                 $s->deleteOne($id);
                 return [$one["name"], $one["color"], $names, $s->getOne($id)];',
                ['Постоянные', 'ff5376', ['Постоянные'], null],
            ],
            'customersStatuses: add, getOne, update (one request per item), deleteOne' => [
                '$s = $amo->customersStatuses(); $ids = array_column($s->add([["name" => "Новый", "sort" => 10], ["name" => "Ушёл", "sort" => 20]]), "id");
                 $s->update([["id" => $ids[0], "name" => "Первый"]]);
                 $first = $s->getOne($ids[0])["name"]; $s->deleteOne($ids[1]);
                 return [$first, array_column($s->get(), "name")];',
                ['Первый', ['Первый']],
            ],
            'customFieldGroups: addOne with fields, getOne, updateOne, deleteOne' => [
                '$f = $amo->customFields("leads")->addOne(["name" => "Адрес доставки", "type" => "text"])["id"];
                 $g = $amo->customFieldGroups("leads"); $id = $g->addOne(["name" => "Доставка", "fields" => [$f]])["id"];
                 $g->updateOne(["id" => $id, "name" => "Логистика"]); $one = $g->getOne($id); $g->deleteOne($id);
                 return [str_starts_with($id, "leads_"), $one["name"], $one["fields"] === [$f], $g->get()];',
                [true, 'Логистика', true, []],
            ],
            'customFieldGroups: a catalog\'s, named as the official library does' => [
                '$id = $amo->customFieldGroups("catalogs:$cat")->addOne(["name" => "Склад"])["id"];
                 return [str_starts_with($id, "catalogs_"), array_column($amo->customFieldGroups("catalogs/$cat")->get(), "name")];',
                [true, ['Склад']],
            ],
            'eventTypes: get and iterate' => [
                '$keys = array_column($amo->eventTypes()->get(["limit" => 5]), "key"); $all = 0;
                 foreach ($amo->eventTypes()->iterate(["limit" => 5]) as $t) { $all++; }
                 return [count($keys), in_array("lead_added", $keys, true), $all > 5];',
                [5, true, true],
            ],
            'entitySubscriptions: subscribe, get, unsubscribe' => [
                '$s = $amo->entitySubscriptions("leads", $lead); $after = array_column($s->subscribe([1001, 1002]), "subscriber_id");
                 $s->unsubscribe(1002);
                 return [$after, array_column($s->get(), "subscriber_id"), array_column($s->get(), "type")];',
                [[1001, 1002], [1001], ['user']],
            ],
            'websiteButtons: createAsync, getOne with its script, updateAsync, addOnlineChatAsync, get' => [
                '$w = $amo->websiteButtons(); $c = $w->createAsync(["pipeline_id" => 1001, "trusted_websites" => ["example.com"], "name" => "Кнопка"]);
                 $sid = $c["source_id"]; $plain = $w->getOne($sid); $scripted = $w->getOne($sid, ["scripts"]);
                 $u = $w->updateAsync($sid, ["trusted_websites" => ["add" => ["shop.example.com"]]]);
                 $w->addOnlineChatAsync($sid);
                 return [$c["name"], array_key_exists("script", $plain), str_contains($scripted["script"], "<script"),
                         $u["trusted_websites"], $w->getOne($sid)["has_online_chat"], array_column($w->get(), "source_id") === [$sid]];',
                ['Кнопка', false, true, ['example.com', 'shop.example.com'], true, true],
            ],
            'chatTemplates: add, updateOne, sendOnReview, updateReviewStatus, delete' => [
                '$t = $amo->chatTemplates(); $ids = array_column($t->add([["name" => "Привет", "content" => "Здравствуйте!"],
                     ["name" => "WABA", "content" => "Hi {{1}}", "type" => "waba"]]), "id");
                 $t->updateOne(["id" => $ids[0], "content" => "Добрый день!"]);
                 $reviews = $t->sendOnReview($ids[1]);
                 $set = $t->updateReviewStatus($ids[1], $reviews[0]["id"], ["status" => "approved"]);
                 $seen = $t->getOne($ids[1], ["reviews"])["_embedded"]["reviews"][0]["status"];
                 $content = $t->getOne($ids[0])["content"];
                 $t->delete($ids);
                 return [$content, $reviews[0]["status"], $set["status"], $seen, $t->get()];',
                ['Добрый день!', 'review', 'approved', 'approved', []],
            ],
            'chatTemplates: an amoCRM template has no review' => [
                '$id = $amo->chatTemplates()->addOne(["name" => "Привет", "content" => "Здравствуйте!"])["id"];
                 try { $amo->chatTemplates()->sendOnReview($id); return "sent"; } catch (AmoValidationException $e) { return $e->getValidationErrors()[0]["errors"][0]["path"]; }',
                'type',
            ],
            'talks: getOne, close, and the talk is no longer in work' => [
                '$t = $amo->talks(); $before = $t->getOne(32000001)["is_in_work"]; $t->close(32000001, true);
                 return [$before, $t->getOne(32000001)["is_in_work"], $t->getOne(32000002)["is_in_work"]];',
                [true, false, true],
            ],
            'talks: an unknown talk is 404' => [
                'try { $amo->talks()->getOne(5); return "found"; } catch (AmoApiException $e) { return $e->getErrorCode(); }',
                404,
            ],
        ];
    }

    /**
     * @dataProvider refusals
     */
    #[DataProvider('refusals')]
    public function testRefusedBeforeAnyRequest(string $code, string $named): void
    {
        $e = $this->fails('AmoConfigException', '$amo = AmoClient::getInstance(); ' . $code);
        $this->assertStringContainsString($named, $e['message']);
        $this->assertSame([], $this->emu->stats()['api_calls'], 'nothing reached amoCRM');
    }

    public static function refusals(): array
    {
        return [
            'products has no list' => ['$amo->products()->get();', 'products() does not support get()'],
            'products settings need is_enabled' => ['$amo->products()->updateSettings(["enabled" => 1]);', '`settings.is_enabled`'],
            'transactions are added per customer' => ['$amo->transactions()->add(0, [["price" => 1]]);', '`customerId`'],
            'a transaction needs its price' => ['$amo->transactions()->add(1, [["comment" => "x"]]);', '`items[0].price`'],
            'transactions cannot be iterated with a bad limit' => ['$amo->transactions()->get(["limit" => 0]);', '`limit`'],
            'segments are added one at a time' => ['$amo->customersSegments()->add([["name" => "x"]]);', 'customersSegments() does not support add()'],
            'customers statuses: a bad id' => ['$amo->customersStatuses()->getOne(-1);', '`id`'],
            'bonus points have no list' => ['$amo->customersBonusPoints()->get();', 'customersBonusPoints() does not support get()'],
            'bonus points must be positive' => ['$amo->customersBonusPoints()->earnPoints(1, 0);', '`points`'],
            'custom field groups need an entity type' => ['$amo->customFieldGroups();', '`entityType`'],
            'custom field groups of an unknown type' => ['$amo->customFieldGroups("deals");', '`entityType`'],
            'custom field groups: updates carry their id' => ['$amo->customFieldGroups("leads")->update([["name" => "x"]]);', '`items[0].id`'],
            'event types are read only' => ['$amo->eventTypes()->add([["key" => "x"]]);', 'eventTypes() does not support add()'],
            'event types have no getOne' => ['$amo->eventTypes()->getOne(1);', 'eventTypes() does not support getOne()'],
            'subscriptions of leads or customers only' => ['$amo->entitySubscriptions("contacts", 1);', '`entityType`'],
            'subscriptions need an entity id' => ['$amo->entitySubscriptions("leads", 0);', '`entityId`'],
            'subscribe takes user ids' => ['$amo->entitySubscriptions("leads", 1)->subscribe(["x"]);', '`userIds[0]`'],
            'a website button needs its pipeline' => ['$amo->websiteButtons()->createAsync(["trusted_websites" => []]);', '`params.pipeline_id`'],
            'website buttons: a bad source id' => ['$amo->websiteButtons()->addOnlineChatAsync(0);', '`sourceId`'],
            'chat templates: delete takes ids' => ['$amo->chatTemplates()->delete([]);', '`ids`'],
            'talks have no list' => ['$amo->talks()->get();', 'talks() does not support get()'],
            'talks: a bad id' => ['$amo->talks()->close(0);', '`talkId`'],
        ];
    }
}
