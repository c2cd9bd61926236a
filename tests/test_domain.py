"""Tests for eventsourcing_rs.domain: events, aggregates, @event, snapshots."""

import inspect
from dataclasses import FrozenInstanceError, InitVar, dataclass, field
from datetime import datetime, timedelta, timezone
from types import FunctionType
from typing import Any, Callable, ClassVar, Dict, List, Optional, Type
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest
from eventsourcing_rs import domain, utils
from eventsourcing_rs.domain import (
    TZINFO,
    Aggregate,
    AggregateCreated,
    AggregateEvent,
    BoundCommandMethodDecorator,
    CommandMethodDecorator,
    DecoratedEvent,
    DomainEvent,
    MetaAggregate,
    MetaDomainEvent,
    Snapshot,
    UnboundCommandMethodDecorator,
    VersionError,
    aggregate,
    event,
    triggers,
)
from eventsourcing_rs.utils import get_method_name, get_topic, resolve_topic
from hypothesis import given
from hypothesis import strategies as st


def now() -> datetime:
    return datetime.now(tz=TZINFO)


def replay(events: List[Any]) -> Any:
    """Rebuild an aggregate from its events, as a repository does."""
    obj = None
    for domain_event in events:
        obj = domain_event.mutate(obj)
    return obj


# ---------------------------------------------------------------------------
# Domain events
# ---------------------------------------------------------------------------


class Renamed(DomainEvent):
    name: str


def test_domain_events_are_frozen_dataclasses() -> None:
    assert isinstance(DomainEvent, MetaDomainEvent)
    assert Renamed.__dataclass_params__.frozen  # type: ignore[attr-defined]
    renamed = Renamed(originator_id=uuid4(), originator_version=1, timestamp=now(), name="x")
    assert renamed.name == "x"
    with pytest.raises(FrozenInstanceError):
        renamed.name = "y"  # type: ignore[misc]
    assert renamed == Renamed(**renamed.__dict__)
    assert list(renamed.__dict__) == [
        "originator_id",
        "originator_version",
        "timestamp",
        "name",
    ]


def test_event_constructor_errors_name_the_class() -> None:
    with pytest.raises(TypeError) as caught:
        Renamed(originator_id=uuid4(), originator_version=1, timestamp=now())  # type: ignore[call-arg]
    assert str(caught.value) == (
        "Renamed.__init__() missing 1 required positional argument: 'name'"
    )
    with pytest.raises(TypeError) as caught:
        Renamed(  # type: ignore[call-arg]
            originator_id=uuid4(),
            originator_version=1,
            timestamp=now(),
            name="x",
            other=1,
        )
    assert str(caught.value) == ("Renamed.__init__() got an unexpected keyword argument 'other'")


def base_fields() -> dict:
    return {"originator_id": uuid4(), "originator_version": 1, "timestamp": now()}


def test_event_fields_with_defaults_and_factories() -> None:
    class WithDefault(DomainEvent):
        count: int = 3

    class WithFactory(DomainEvent):
        items: List[int] = field(default_factory=list)

    class WithPostInit(DomainEvent):
        value: int
        seen: ClassVar[List[int]] = []

        def __post_init__(self) -> None:
            self.seen.append(self.value)

    class WithInitVar(DomainEvent):
        scale: InitVar[int]
        value: int = 0

        def __post_init__(self, scale: int) -> None:
            object.__setattr__(self, "value", scale * 2)

    assert WithDefault(**base_fields()).count == 3
    assert WithDefault(**base_fields(), count=4).count == 4
    first, second = WithFactory(**base_fields()), WithFactory(**base_fields())
    assert first.items == [] and first.items is not second.items
    WithPostInit(**base_fields(), value=7)
    assert WithPostInit.seen == [7]
    assert WithInitVar(**base_fields(), scale=5).value == 10  # type: ignore[call-arg]


def test_event_class_may_define_its_own_init() -> None:
    class Custom(DomainEvent):
        def __init__(self, **kwargs: Any) -> None:
            object.__setattr__(self, "extra", True)
            for key, value in kwargs.items():
                object.__setattr__(self, key, value)

    custom = Custom(**base_fields())
    assert custom.extra is True  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Creating aggregates
# ---------------------------------------------------------------------------


def test_base_aggregate_can_be_created() -> None:
    before = now()
    agg = Aggregate()
    after = now()
    assert isinstance(agg.id, UUID) and agg.id.version == 4
    assert agg.version == 1
    assert before < agg.created_on == agg.modified_on < after
    (created,) = agg.collect_events()
    assert type(created) is Aggregate.Created
    assert type(created).__qualname__ == "Aggregate.Created"
    assert created.originator_topic == "eventsourcing_rs.domain:Aggregate"
    assert agg.pending_events == []


def test_new_ids_are_distinct_random_uuids() -> None:
    ids = {Aggregate().id for _ in range(1000)}
    assert len(ids) == 1000
    assert {i.version for i in ids} == {4}


class Dog(Aggregate):
    def __init__(self, name: str, age: int = 1) -> None:
        self.name = name
        self.age = age
        self.tricks: List[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)

    @event
    def had_birthday(self) -> None:
        self.age += 1


def test_init_style_aggregate() -> None:
    dog = Dog("Fido", age=3)
    assert (dog.name, dog.age, dog.tricks) == ("Fido", 3, [])
    (created,) = dog.pending_events
    assert type(created) is Dog.Created
    assert issubclass(Dog.Created, AggregateCreated)
    assert created.name == "Fido" and created.age == 3  # type: ignore[attr-defined]
    assert type(created).__qualname__ == "Dog.Created"
    assert type(created).__module__ == __name__
    assert Dog("Rex").age == 1


def test_dataclass_style_aggregate() -> None:
    @dataclass
    class Cat(Aggregate):
        name: str
        lives: int = 9

    for cat in (Cat("Tom"), Cat(name="Tom"), Cat("Tom", 9)):
        assert (cat.name, cat.lives) == ("Tom", 9)
    assert Cat("Tom", lives=3).lives == 3
    assert "lives" in repr(Cat("Tom"))
    assert list(inspect.signature(Cat.__init__).parameters) == [
        "self",
        "name",
        "lives",
    ]


def test_created_event_is_what_rebuilds_the_aggregate() -> None:
    dog = Dog("Fido")
    copy = replay(dog.collect_events())
    assert copy == dog
    assert copy is not dog


def test_collect_events_empties_the_pending_list() -> None:
    dog = Dog("Fido")
    dog.add_trick("sit")
    pending = dog.pending_events
    events = dog.collect_events()
    assert [type(e) for e in events] == [Dog.Created, Dog.TrickAdded]
    assert pending == [] and dog.pending_events is pending
    assert dog.collect_events() == []


def test_initial_version_can_be_chosen() -> None:
    class FromZero(Aggregate):
        INITIAL_VERSION = 0

    agg = FromZero()
    assert agg.version == 0
    agg.trigger_event(AggregateEvent)
    assert agg.version == 1


def test_create_id_receives_the_arguments_it_names() -> None:
    class Page(Aggregate):
        def __init__(self, slug: str, title: str = "") -> None:
            self.slug = slug
            self.title = title

        @staticmethod
        def create_id(slug: str) -> UUID:
            return uuid5(NAMESPACE_URL, f"/pages/{slug}")

    page = Page("home", title="Home")
    assert page.id == uuid5(NAMESPACE_URL, "/pages/home")

    class Section(Aggregate):
        name: str

        @classmethod
        def create_id(cls, name: str) -> UUID:
            return uuid5(NAMESPACE_URL, f"/sections/{name}")

    assert Section(name="a").id == Section.create_id("a")


def test_id_declared_as_a_field_is_the_aggregate_id() -> None:
    @dataclass
    class Account(Aggregate):
        id: UUID
        owner: str

    account_id = uuid4()
    account = Account(account_id, "alice")
    assert account.id == account_id
    assert Account(owner="bob", id=account_id).id == account_id
    assert "id" not in Account.__annotations__
    assert list(inspect.signature(Account.__init__).parameters) == ["self", "owner"]
    with pytest.raises(TypeError) as caught:
        Account()  # type: ignore[call-arg]
    assert str(caught.value) == (
        f"{get_method_name(Account.__init__)}() missing 2 required positional "
        "arguments: 'id' and 'owner'"
    )
    copy = replay(account.collect_events())
    assert copy.id == account_id and copy.owner == "alice"


def test_init_may_take_the_id() -> None:
    class Tagged(Aggregate):
        def __init__(self, id: UUID, tag: str) -> None:
            self.seen_id = id
            self.tag = tag

    tagged_id = uuid4()
    tagged = Tagged(id=tagged_id, tag="x")
    assert tagged.id == tagged_id and tagged.seen_id == tagged_id
    assert "id" not in Tagged.Created.__dataclass_fields__  # type: ignore[attr-defined]
    copy = replay(tagged.collect_events())
    assert copy.seen_id == tagged_id


def test_aggregate_classes_are_mutable_dataclasses() -> None:
    class Plain(Aggregate):
        pass

    params = Plain.__dataclass_params__  # type: ignore[attr-defined]
    assert not params.frozen and not params.eq and not params.repr


# Choosing the created event


def test_created_event_name() -> None:
    class Order(Aggregate, created_event_name="Placed"):
        def __init__(self, item: str) -> None:
            self.item = item

    assert Order._created_event_class is Order.Placed  # type: ignore[attr-defined]
    assert type(Order("x").pending_events[0]).__qualname__.endswith("Order.Placed")


def test_created_event_name_may_refer_to_a_defined_class() -> None:
    class Order(Aggregate, created_event_name="Placed"):
        def __init__(self, item: str) -> None:
            self.item = item

        class Created(AggregateCreated):
            item: str

        class Placed(AggregateCreated):
            item: str

    assert type(Order("x").pending_events[0]) is Order.Placed


def test_single_defined_created_event_is_used() -> None:
    class Order(Aggregate):
        class Started(AggregateCreated):
            pass

    assert Order._created_event_class is Order.Started
    assert not hasattr(Order, "Created") or Order.Created is Aggregate.Created


def test_several_created_events_need_a_choice() -> None:
    class Order(Aggregate):
        class Started(AggregateCreated):
            pass

        class Opened(AggregateCreated):
            pass

    with pytest.raises(TypeError) as caught:
        Order()
    assert str(caught.value) == "attribute '_created_event_class' not set on class"
    agg = Order._create(Order.Opened)
    assert type(agg.pending_events[0]) is Order.Opened

    class Chosen(Aggregate):
        class Started(AggregateCreated):
            pass

        class Opened(AggregateCreated):
            pass

        _created_event_class = Opened

    assert type(Chosen().pending_events[0]) is Chosen.Opened


def test_init_decorated_with_event_name_or_class() -> None:
    class Named(Aggregate):
        @event("Begun")
        def __init__(self, a: int) -> None:
            self.a = a

    named = Named(1)
    assert type(named.pending_events[0]) is Named.Begun  # type: ignore[attr-defined]
    assert replay(named.collect_events()).a == 1
    assert isinstance(Named.__dict__["__init__"], FunctionType)

    class Given(Aggregate):
        class Begun(AggregateCreated):
            a: int

        @event(Begun)
        def __init__(self, a: int) -> None:
            self.a = a

    assert type(Given(a=2).pending_events[0]) is Given.Begun


@pytest.mark.parametrize(
    "make_class, message",
    [
        (
            lambda: MetaAggregate(
                "X",
                (Aggregate,),
                {"_created_event_class": AggregateCreated},
                created_event_name="Begun",
            ),
            "Can't use both '_created_event_class' and 'created_event_name'",
        ),
        (
            lambda: MetaAggregate(
                "X",
                (Aggregate,),
                {"__init__": event("Begun")(lambda_free_init())},
                created_event_name="Begun",
            ),
            "Can't use both 'created_event_name' and __init__ @event decorator",
        ),
        (
            lambda: MetaAggregate(
                "X",
                (Aggregate,),
                {
                    "_created_event_class": AggregateCreated,
                    "__init__": event("Begun")(lambda_free_init()),
                },
            ),
            "Can't use both '_created_event_class' and __init__ @event decorator",
        ),
        (
            lambda: MetaAggregate("X", (Aggregate,), {"__init__": event(lambda_free_init())}),
            "Neither name nor class given to __init__ @event decorator",
        ),
    ],
)
def test_conflicting_created_event_choices(make_class: Callable[[], Any], message: str) -> None:
    with pytest.raises(TypeError) as caught:
        make_class()
    assert str(caught.value) == message


def lambda_free_init() -> Any:
    def __init__(self: Any) -> None:
        pass

    return __init__


def test_create_wraps_event_construction_errors() -> None:
    class Broken(Aggregate):
        @classmethod
        def create(cls, name: str) -> "Broken":
            return cls._create(cls.Created, name=name)  # type: ignore[no-any-return]

    with pytest.raises(TypeError) as caught:
        Broken.create("x")
    method_name = get_method_name(Broken.Created.__init__)
    assert str(caught.value) == (
        "Unable to construct 'aggregate created' event with class "
        f"{Broken.Created.__qualname__} and keyword args {{'name': 'x'}}: "
        f"{method_name}() got an unexpected keyword argument 'name'"
    )


# Argument errors when calling an aggregate class


def plain_and_aggregate(init: Callable[..., None]) -> List[type]:
    """A plain class and an aggregate class with the same __init__."""
    namespace = {"__init__": init, "__qualname__": "Same", "__module__": __name__}
    plain = type("Same", (), dict(namespace))
    agg = MetaAggregate("Same", (Aggregate,), dict(namespace))
    return [plain, agg]


def init_a_b_c(self: Any, a: Any, b: Any, c: Any = 3, *, d: Any) -> None:
    pass


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((), {"d": 4}),
        ((1,), {"d": 4}),
        ((1, 2), {}),
        ((), {"b": 2, "d": 4}),
        ((1, 2, 3), {"d": 4, "e": 5}),
        ((1, 2, 3), {"c": 3, "d": 4}),
        ((1,), {"a": 1, "b": 2, "d": 4}),
        ((1, 2), {"z": 0}),
    ],
)
def test_call_errors_read_like_the_interpreters(args: Any, kwargs: Any) -> None:
    messages = []
    for cls in plain_and_aggregate(init_a_b_c):
        with pytest.raises(TypeError) as caught:
            cls(*args, **kwargs)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert messages[1].startswith("init_a_b_c() ")


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((1, 2, 3, 4), {"d": 4}, "takes 4 positional arguments but 5 were given"),
        ((), {"d": 1}, "missing 2 required positional arguments: 'a' and 'b'"),
        ((1, 2), {}, "missing 1 required keyword-only argument: 'd'"),
        ((1,), {"x": 1}, "got an unexpected keyword argument 'x'"),
        ((1, 2, 3), {"c": 1, "d": 2}, "got multiple values for argument 'c'"),
    ],
)
def test_call_errors(args: Any, kwargs: Any, message: str) -> None:
    _, cls = plain_and_aggregate(init_a_b_c)
    with pytest.raises(TypeError) as caught:
        cls(*args, **kwargs)
    assert str(caught.value) == f"init_a_b_c() {message}"


def test_keyword_only_parameters_with_defaults_are_optional() -> None:
    class Options(Aggregate):
        def __init__(self, *, verbose: bool = False, level: int) -> None:
            self.verbose = verbose
            self.level = level

    options = Options(level=2)
    assert (options.verbose, options.level) == (False, 2)
    assert replay(options.collect_events()).level == 2


def test_variable_parameters_are_refused() -> None:
    with pytest.raises(TypeError, match="^variable positional parameters not"):

        class Star(Aggregate):
            def __init__(self, *values: Any) -> None:
                pass

    with pytest.raises(TypeError, match="^variable keyword parameters not"):

        class StarStar(Aggregate):
            def __init__(self, **values: Any) -> None:
                pass


def test_signature_is_analysed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Aggregate construction and command methods are on the hot path: after
    # the first call they must not inspect signatures again.
    dog = Dog("Fido")
    dog.add_trick("sit")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("signature inspected on a hot path")

    monkeypatch.setattr(inspect, "signature", refuse)
    for _ in range(3):
        dog = Dog("Rex", 2)
        dog.add_trick("roll")
        dog.had_birthday()
    assert replay(dog.collect_events()) == dog


def test_replacing_init_after_class_creation_is_honoured() -> None:
    class Box(Aggregate):
        size: int

    with pytest.raises(TypeError, match="missing 1 required positional"):
        Box()

    def __init__(self: Any, size: int = 5) -> None:
        self.size = size * 2

    Box.__init__ = __init__  # type: ignore[method-assign]
    assert Box().size == 10
    assert Box(1).size == 2


# ---------------------------------------------------------------------------
# Subsequent events
# ---------------------------------------------------------------------------


def test_trigger_event_applies_and_records() -> None:
    class Counter(Aggregate):
        count: int = 0

        class Incremented(AggregateEvent):
            by: int

            def apply(self, aggregate: Any) -> None:
                aggregate.count += self.by

    counter = Counter()
    created_on = counter.created_on
    counter.trigger_event(Counter.Incremented, by=2)
    assert counter.count == 2
    assert counter.version == 2
    assert counter.modified_on > created_on == counter.created_on
    copy = replay(counter.collect_events())
    assert copy == counter


def test_trigger_event_with_wrong_arguments() -> None:
    class Counter(Aggregate):
        class Incremented(AggregateEvent):
            by: int

    counter = Counter()
    with pytest.raises(TypeError) as caught:
        counter.trigger_event(Counter.Incremented)
    message = str(caught.value)
    assert message.startswith(f"Can't construct event {Counter.Incremented}: ")
    assert message.endswith("__init__() missing 1 required positional argument: 'by'")
    assert counter.version == 1 and len(counter.pending_events) == 1


def test_apply_must_not_return_a_value() -> None:
    class Counter(Aggregate):
        class Incremented(AggregateEvent):
            def apply(self, aggregate: Any) -> Any:
                return 1

    with pytest.raises(TypeError) as caught:
        Counter().trigger_event(Counter.Incremented)
    assert str(caught.value) == (
        "Unexpected value returned from "
        f"{Counter.Incremented.apply.__qualname__}(). "
        "Values returned from 'apply' methods are discarded."
    )


def test_event_out_of_sequence_raises_version_error() -> None:
    agg = Aggregate()
    stale = AggregateEvent(originator_id=agg.id, originator_version=agg.version, timestamp=now())
    with pytest.raises(VersionError) as caught:
        stale.mutate(agg)
    assert caught.value.args == (1, 2)
    assert agg.version == 1
    ahead = AggregateEvent(originator_id=agg.id, originator_version=5, timestamp=now())
    with pytest.raises(VersionError):
        ahead.mutate(agg)


def test_equality_and_repr() -> None:
    class Item(Aggregate):
        id: UUID
        label: str

    item_id = uuid4()
    item = Item(item_id, "a")
    assert item == item
    assert item != Item(uuid4(), "a")
    assert replay(item.collect_events()) == item
    assert repr(item) == (
        f"Item(id={item.id!r}, version=1, created_on={item.created_on!r}, "
        f"modified_on={item.modified_on!r}, label='a')"
    )
    with pytest.raises(TypeError):
        hash(item)


# ---------------------------------------------------------------------------
# The @event decorator
# ---------------------------------------------------------------------------


def test_event_decorator_names_and_classes() -> None:
    dog = Dog("Fido")
    dog.add_trick("sit")
    dog.had_birthday()
    assert dog.tricks == ["sit"] and dog.age == 2 and dog.version == 3
    events = dog.collect_events()
    assert [type(e) for e in events] == [Dog.Created, Dog.TrickAdded, Dog.HadBirthday]  # type: ignore[attr-defined]
    assert issubclass(Dog.TrickAdded, DecoratedEvent)  # type: ignore[attr-defined]
    assert Dog.TrickAdded.__qualname__ == "Dog.TrickAdded"  # type: ignore[attr-defined]
    assert events[1].trick == "sit"
    assert replay(events) == dog


def test_event_decorator_called_with_no_arguments_and_triggers_alias() -> None:
    assert triggers is event

    class Light(Aggregate):
        @event()
        def switched_on(self) -> None:
            self.on = True

        @triggers("SwitchedOff")
        def switch_off(self) -> None:
            self.on = False

    light = Light()
    light.switched_on()
    assert light.on
    light.switch_off()
    assert not light.on
    assert [type(e).__name__ for e in light.pending_events] == [
        "Created",
        "SwitchedOn",
        "SwitchedOff",
    ]


def test_event_decorator_with_explicit_class() -> None:
    class Order(Aggregate):
        class Confirmed(AggregateEvent):
            at: datetime

        @event(Confirmed)
        def confirm(self, at: datetime) -> None:
            self.confirmed_at = at

    order = Order()
    when = now()
    order.confirm(when)
    assert order.confirmed_at == when
    assert type(order.pending_events[1]) is Order.Confirmed
    assert replay(order.collect_events()).confirmed_at == when


def test_bound_and_unbound_decorated_methods() -> None:
    dog = Dog("Fido")
    bound = dog.add_trick
    assert isinstance(bound, BoundCommandMethodDecorator)
    assert isinstance(Dog.__dict__["add_trick"], CommandMethodDecorator)
    assert get_method_name(bound) == get_method_name(Dog.add_trick)
    assert bound.__name__ == "add_trick"
    assert bound.__qualname__ == "Dog.add_trick"
    bound.trigger("beg")
    assert dog.tricks == ["beg"]

    unbound = Dog.add_trick
    assert isinstance(unbound, UnboundCommandMethodDecorator)
    assert unbound.__qualname__ == "Dog.add_trick"
    with pytest.raises(TypeError) as caught:
        unbound()  # type: ignore[operator]
    assert str(caught.value) == "'UnboundCommandMethodDecorator' object is not callable"


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((1, 2), {}, "takes 2 positional arguments but 3 were given"),
        ((), {}, "missing 1 required positional argument: 'trick'"),
        (("a",), {"trick": "b"}, "got multiple values for argument 'trick'"),
        ((), {"trik": "b"}, "got an unexpected keyword argument 'trik'"),
    ],
)
def test_decorated_method_argument_errors(args: Any, kwargs: Any, message: str) -> None:
    dog = Dog("Fido")
    with pytest.raises(TypeError) as caught:
        dog.add_trick(*args, **kwargs)
    assert str(caught.value) == f"Dog.add_trick() {message}"
    assert dog.version == 1


def test_decorated_method_keyword_and_default_arguments() -> None:
    class Shape(Aggregate):
        @event
        def resized(self, width: int = 1, height: int = 1, *, unit: str) -> None:
            self.size = (width, height, unit)

    shape = Shape()
    shape.resized(unit="cm")
    assert shape.size == (1, 1, "cm")
    shape.resized(2, unit="m", height=3)
    assert shape.size == (2, 3, "m")
    with pytest.raises(TypeError) as caught:
        shape.resized(2)
    assert str(caught.value).endswith("resized() missing 1 required keyword-only argument: 'unit'")
    assert replay(shape.collect_events()) == shape


def test_decorated_method_failure_triggers_nothing() -> None:
    class Order(Aggregate):
        confirmed: bool = False

        @event("Shipped")
        def ship(self) -> None:
            if not self.confirmed:
                raise RuntimeError("not confirmed")

    order = Order()
    with pytest.raises(RuntimeError):
        order.ship()
    assert order.version == 1 and len(order.pending_events) == 1


def test_decorated_method_must_not_return_a_value() -> None:
    class Calc(Aggregate):
        @event("Computed")
        def compute(self) -> int:
            return 1

    with pytest.raises(TypeError) as caught:
        Calc().compute()
    assert str(caught.value) == (
        "Unexpected value returned from "
        f"{Calc.compute.__qualname__}(). "
        "Values returned from 'apply' methods are discarded."
    )


def test_event_decorated_property_setter() -> None:
    class Person(Aggregate):
        def __init__(self, name: str) -> None:
            self._name = name

        @property
        def name(self) -> str:
            return self._name

        @event("Renamed")
        @name.setter
        def name(self, value: str) -> None:
            self._name = value

    person = Person("Ann")
    person.name = "Bea"
    assert person.name == "Bea"
    assert type(person.pending_events[1]) is Person.Renamed  # type: ignore[attr-defined]
    assert person.pending_events[1].value == "Bea"  # type: ignore[attr-defined]
    assert replay(person.collect_events()).name == "Bea"


def test_property_setter_that_is_event_decorated() -> None:
    class Person(Aggregate):
        @property
        def name(self) -> Optional[str]:
            return getattr(self, "_name", None)

        @name.setter
        @event("Renamed")
        def name(self, value: str) -> None:
            self._name = value

    person = Person()
    person.name = "Cy"
    assert person.name == "Cy"
    assert type(person.pending_events[1]) is Person.Renamed  # type: ignore[attr-defined]
    assert replay(person.collect_events()).name == "Cy"


def test_decorated_method_cannot_be_assigned() -> None:
    dog = Dog("Fido")
    with pytest.raises(AttributeError):
        dog.add_trick = None  # type: ignore[assignment,method-assign]


def test_subclass_inherits_decorated_methods() -> None:
    class ShowDog(Dog):
        def __init__(self, name: str) -> None:
            super().__init__(name)

        @event("Won")
        def win(self, prize: str) -> None:
            self.prize = prize

    show_dog = ShowDog("Lassie")
    show_dog.add_trick("bow")
    show_dog.win("cup")
    events = show_dog.collect_events()
    assert [type(e) for e in events] == [ShowDog.Created, Dog.TrickAdded, ShowDog.Won]  # type: ignore[attr-defined]
    copy = replay(events)
    assert type(copy) is ShowDog and copy == show_dog


@pytest.mark.parametrize(
    "body, exc_type, message",
    [
        ("empty_name", ValueError, "Can't use empty string as name of event class"),
        (
            "staticmethod",
            TypeError,
            "f() staticmethod can't be used to update aggregate state",
        ),
        (
            "classmethod",
            TypeError,
            "f() classmethod can't be used to update aggregate state",
        ),
        (
            "unnamed_over_setter",
            TypeError,
            "@event on value() property setter requires event class name",
        ),
        (
            "unnamed_under_setter",
            TypeError,
            "@event under value() property setter requires event class name",
        ),
        ("getter", TypeError, "@event can't decorate value() property getter"),
        ("star_args", TypeError, "variable positional parameters not supported"),
        ("star_kwargs", TypeError, "variable keyword parameters not supported"),
        ("duplicate_name", TypeError, "Done event already defined on Bad"),
        ("clashing_name", TypeError, "Done event already defined on Bad"),
    ],
)
def test_event_decorator_misuse(body: str, exc_type: Type[Exception], message: str) -> None:
    def define() -> None:
        if body == "empty_name":
            event("")
        elif body == "staticmethod":

            class Bad(Aggregate):
                @event
                @staticmethod
                def f() -> None:
                    pass

        elif body == "classmethod":

            class Bad(Aggregate):  # type: ignore[no-redef]
                @event
                @classmethod
                def f(cls) -> None:
                    pass

        elif body == "unnamed_over_setter":

            class Bad(Aggregate):  # type: ignore[no-redef]
                @property
                def value(self) -> int:
                    return 0

                @event
                @value.setter
                def value(self, x: int) -> None:
                    pass

        elif body == "unnamed_under_setter":

            class Bad(Aggregate):  # type: ignore[no-redef]
                @property
                def value(self) -> int:
                    return 0

                @value.setter
                @event
                def value(self, x: int) -> None:
                    pass

        elif body == "getter":

            class Bad(Aggregate):  # type: ignore[no-redef]
                @event("Read")
                @property
                def value(self) -> int:
                    return 0

        elif body == "star_args":

            class Bad(Aggregate):  # type: ignore[no-redef]
                @event("Done")
                def f(self, *args: Any) -> None:
                    pass

        elif body == "star_kwargs":

            class Bad(Aggregate):  # type: ignore[no-redef]
                @event
                def f(self, **kwargs: Any) -> None:
                    pass

        elif body == "duplicate_name":

            class Bad(Aggregate):  # type: ignore[no-redef]
                @event("Done")
                def f(self) -> None:
                    pass

                @event("Done")
                def g(self) -> None:
                    pass

        elif body == "clashing_name":

            class Bad(Aggregate):  # type: ignore[no-redef]
                class Done(AggregateEvent):
                    pass

                @event("Done")
                def f(self) -> None:
                    pass

    with pytest.raises(exc_type) as caught:
        define()
    assert str(caught.value) == message


def test_explicit_event_class_misuse() -> None:
    with pytest.raises(TypeError) as caught:

        class WithApply(Aggregate):
            class Done(AggregateEvent):
                def apply(self, aggregate: Any) -> None:
                    pass

            @event(Done)
            def f(self) -> None:
                pass

    assert str(caught.value) == "Done event class has unexpected apply() method"

    with pytest.raises(TypeError) as caught:

        class UsedTwice(Aggregate):
            class Done(AggregateEvent):
                pass

            @event(Done)
            def f(self) -> None:
                pass

            @event(Done)
            def g(self) -> None:
                pass

    assert str(caught.value) == "Done event class used in more than one decorator"


def test_event_decorator_unsupported_arguments() -> None:
    with pytest.raises(TypeError) as caught:
        event(1)  # type: ignore[arg-type]
    assert str(caught.value) == ("Unsupported usage: <class 'int'> is not a str or function")
    with pytest.raises(ValueError) as value_caught:
        event("Named")(1)
    assert str(value_caught.value) == (
        "Unsupported usage: <class 'int'> is not a str or a FunctionType"
    )


# ---------------------------------------------------------------------------
# The @aggregate decorator
# ---------------------------------------------------------------------------


class Base:
    def describe(self) -> str:
        return "base"


def test_aggregate_decorator_on_plain_class() -> None:
    @aggregate
    class Note:
        """A note."""

        text: str

        @event("Edited")
        def edit(self, text: str) -> None:
            self.text = text

    assert issubclass(Note, Aggregate)
    assert Note.__bases__ == (Aggregate,)
    assert Note.__doc__ == "A note."
    assert Note.__annotations__ == {"text": str}
    assert Note.__qualname__.endswith("test_aggregate_decorator_on_plain_class.<locals>.Note")
    note = Note(text="a")
    note.edit("b")
    assert note.text == "b"
    copy = replay(note.collect_events())
    assert copy == note
    assert isinstance(copy.__dict__, dict)


def test_aggregate_decorator_keeps_bases_and_takes_created_event_name() -> None:
    @aggregate(created_event_name="Drafted")
    class Memo(Base):
        text: str = ""

    assert Memo.__bases__ == (Base, Aggregate)
    memo = Memo()
    assert memo.describe() == "base"
    assert type(memo.pending_events[0]).__name__ == "Drafted"


def test_aggregate_decorator_refuses_aggregates() -> None:
    with pytest.raises(TypeError) as caught:

        @aggregate
        class Already(Aggregate):
            pass

    assert str(caught.value) == "Already is already an Aggregate"


class Holder:
    @aggregate
    class Nested:
        value: int = 0


def test_aggregate_decorator_keeps_qualified_name_for_topics() -> None:
    assert Holder.Nested.__qualname__ == "Holder.Nested"
    topic = get_topic(Holder.Nested)
    assert topic == f"{__name__}:Holder.Nested"
    created_topic = Holder.Nested().pending_events[0].originator_topic
    assert created_topic == topic


# ---------------------------------------------------------------------------
# Snapshots and class versions
# ---------------------------------------------------------------------------


def test_snapshot_take_and_mutate() -> None:
    dog = Dog("Fido")
    dog.add_trick("sit")
    dog.collect_events()
    snapshot = Snapshot.take(dog)
    assert isinstance(snapshot, DomainEvent)
    assert snapshot.originator_id == dog.id
    assert snapshot.originator_version == 2
    assert snapshot.topic == get_topic(Dog)
    assert snapshot.state == {
        "_created_on": dog.created_on,
        "_modified_on": dog.modified_on,
        "name": "Fido",
        "age": 1,
        "tricks": ["sit"],
    }
    copy = snapshot.mutate()
    assert copy == dog and copy.pending_events == []
    copy.add_trick("roll")
    assert copy.version == 3


class Parcel(Aggregate):
    class_version = 3
    weight_grams: int
    label: str = ""

    @staticmethod
    def upcast_v1_v2(state: dict) -> None:
        state["weight_grams"] = state.pop("weight_kg") * 1000

    @staticmethod
    def upcast_v2_v3(state: dict) -> None:
        state["label"] = ""


def test_snapshot_records_class_version() -> None:
    parcel = Parcel(weight_grams=5)
    parcel.collect_events()
    assert Snapshot.take(parcel).state["class_version"] == 3
    assert "class_version" not in Snapshot.take(Dog("x")).state
    assert Snapshot.take(parcel).mutate() == parcel


def test_snapshot_of_older_class_version_is_upcast() -> None:
    old = Snapshot(  # type: ignore[call-arg]
        originator_id=uuid4(),
        originator_version=4,
        timestamp=now(),
        topic=get_topic(Parcel),
        state={"_created_on": now(), "_modified_on": now(), "weight_kg": 2},
    )
    parcel = old.mutate()
    assert type(parcel) is Parcel
    assert parcel.weight_grams == 2000 and parcel.label == ""
    assert parcel.version == 4

    from_v2 = Snapshot(  # type: ignore[call-arg]
        originator_id=uuid4(),
        originator_version=1,
        timestamp=now(),
        topic=get_topic(Parcel),
        state={
            "_created_on": now(),
            "_modified_on": now(),
            "weight_grams": 7,
            "class_version": 2,
        },
    )
    assert from_v2.mutate().label == ""


def test_snapshot_of_unknown_class_names_the_topic() -> None:
    snapshot = Snapshot(  # type: ignore[call-arg]
        originator_id=uuid4(),
        originator_version=1,
        timestamp=now(),
        topic=f"{__name__}:NoSuchAggregate",
        state={},
    )
    with pytest.raises(AttributeError, match="NoSuchAggregate"):
        snapshot.mutate()


# ---------------------------------------------------------------------------
# Specialised fast paths
# ---------------------------------------------------------------------------
#
# Calling an aggregate class, calling an @event method and mutating events
# go through functions generated per class where nothing is overridden.
# They must behave exactly as the general path does.


class Shapes(Aggregate):
    def __init__(self, a: Any, b: Any = 2, *, c: Any = 3, d: Any) -> None:
        self.got = (a, b, c, d)

    @event("Done")
    def do(self, x: Any, y: Any = 5, *, z: Any = 6) -> None:
        self.did = (x, y, z)


def outcome(call: Callable[[], Any]) -> Any:
    """What a call returns or raises, without IDs and times."""
    try:
        agg = call()
    except TypeError as error:
        return ("error", str(error))
    if agg is None:
        return None
    hidden = ("_id", "_created_on", "_modified_on", "_pending_events")
    state = {k: v for k, v in agg.__dict__.items() if k not in hidden}
    events = [
        (
            type(e),
            [(k, v) for k, v in e.__dict__.items() if k not in ("originator_id", "timestamp")],
        )
        for e in agg.pending_events
    ]
    return state, events


call_arguments = st.tuples(
    st.lists(st.integers(0, 9), max_size=4).map(tuple),
    st.dictionaries(st.sampled_from("abcdexyzw"), st.integers(0, 9), max_size=5),
)


@given(call_arguments)
def test_creation_matches_the_general_path(arguments: Any) -> None:
    args, kwargs = arguments
    fast = outcome(lambda: Shapes(*args, **kwargs))
    general = outcome(lambda: domain._call_generally(Shapes, args, kwargs))
    assert fast == general
    if fast[0] != "error":
        assert domain._creators[Shapes] is not None


@given(call_arguments)
def test_decorated_method_matches_the_general_path(arguments: Any) -> None:
    args, kwargs = arguments
    decorator = Shapes.__dict__["do"]
    fast, general = Shapes(1, d=4), Shapes(1, d=4)
    fast_outcome = outcome(lambda: fast.do(*args, **kwargs) or fast)
    general_outcome = outcome(lambda: decorator._trigger(general, args, kwargs) or general)
    assert fast_outcome == general_outcome
    assert decorator._fast_triggers[Shapes] is not None
    if fast_outcome[0] != "error":
        assert outcome(lambda: replay(fast.collect_events())) == outcome(
            lambda: replay(general.collect_events())
        )


def named_parameters_aggregate(names: List[str]) -> Any:
    """An aggregate class whose __init__ and @event method take ``names``,
    and record the arguments they are given."""
    params = ", ".join(names)
    namespace: Dict[str, Any] = {}
    exec(f"def init(self, {params}): self.init_args = locals()", namespace)
    exec(f"def do(self, {params}): self.method_args = locals()", namespace)

    class Named(Aggregate):
        __init__ = namespace["init"]
        do = event("Done")(namespace["do"])

    return Named


@pytest.mark.parametrize(
    "names, specialised",
    [
        # Names of the generated functions' own variables.
        (
            "state event agg init args kwargs error given aggregate version topic method"
            " new_object bind objs_cache create_id call_generally trigger_generally now"
            " datetime_class",
            True,
        ),
        # Names of the globals they read: these take the general path.
        ("len datetime TZINFO TypeError VersionError _new_uuid4", False),
    ],
)
def test_parameters_may_have_the_names_used_inside(names: str, specialised: bool) -> None:
    values = {name: i for i, name in enumerate(names.split())}
    named = named_parameters_aggregate(list(values))
    agg = named(**values)
    agg.do(*values.values())
    assert agg.init_args == {"self": agg, **values}
    assert agg.method_args == {"self": agg, **values}
    copy = replay(agg.collect_events())
    assert copy.init_args == {"self": copy, **values}
    assert copy.method_args == {"self": copy, **values}
    assert (domain._creators[named] is not None) is specialised
    assert (named.__dict__["do"]._fast_triggers[named] is not None) is specialised


@pytest.mark.parametrize("name", ["cls", "event_class"])
def test_arguments_named_like_those_of_create_clash(name: str) -> None:
    named = named_parameters_aggregate([name])
    with pytest.raises(TypeError, match=f"multiple values for argument '{name}'"):
        named(1)


def test_arguments_named_like_those_of_trigger_event_clash() -> None:
    class Clashing(Aggregate):
        @event("Done")
        def do(self, event_class: Any) -> None:
            pass

    with pytest.raises(TypeError, match="multiple values for argument 'event_class'"):
        Clashing().do(1)


def test_changes_to_classes_after_first_use_are_honoured() -> None:
    class Counter(Aggregate):
        def __init__(self, start: int) -> None:
            self.count = start

        @event("Incremented")
        def increment(self, by: int) -> None:
            self.count += by

    counter = Counter(1)
    counter.increment(1)
    Counter.INITIAL_VERSION = 10  # type: ignore[misc]
    assert Counter(1).version == 10

    fixed = UUID(int=7)
    Counter.create_id = staticmethod(lambda **kwargs: fixed)  # type: ignore[method-assign]
    assert Counter(1).id == fixed

    seen: List[Any] = []

    def trigger_event(self: Any, event_class: Any, **kwargs: Any) -> None:
        seen.append(event_class)
        Aggregate.trigger_event(self, event_class, **kwargs)

    Counter.trigger_event = trigger_event  # type: ignore[method-assign]
    counter.increment(2)
    assert seen == [Counter.Incremented] and counter.count == 4  # type: ignore[attr-defined]

    def init(self: Any, start: int, step: int = 1) -> None:
        self.count = start * 100

    Counter.__init__ = init  # type: ignore[method-assign]
    with pytest.raises(TypeError, match="unexpected keyword argument 'step'"):
        Counter(1)


def test_clock_and_time_zone_are_read_on_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    class Clocked(Aggregate):
        @event("Ticked")
        def tick(self) -> None:
            pass

    Clocked().tick()  # Specialise first.
    zone = timezone(timedelta(hours=5))
    monkeypatch.setattr(domain, "TZINFO", zone)
    agg = Clocked()
    agg.tick()
    assert agg.created_on.tzinfo is zone and agg.modified_on.tzinfo is zone

    class FixedClock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> "FixedClock":
            return cls(2001, 2, 3, tzinfo=tz)

    monkeypatch.setattr(domain, "datetime", FixedClock)
    agg = Clocked()
    agg.tick()
    assert agg.created_on == agg.modified_on == FixedClock(2001, 2, 3, tzinfo=zone)


def test_creating_registers_the_topic_each_time() -> None:
    class Registered(Aggregate):
        pass

    topic = get_topic(Registered)
    Registered()
    del utils._objs_cache[topic]
    Registered()
    assert utils._objs_cache[topic] is Registered


def test_errors_raised_inside_init_and_methods_are_not_reworded() -> None:
    class Fussy(Aggregate):
        def __init__(self, ok: bool) -> None:
            if not ok:
                raise TypeError("not ok")

        @event("Checked")
        def check(self, ok: bool) -> None:
            if not ok:
                raise TypeError("still not ok")

    with pytest.raises(TypeError, match="^not ok$"):
        Fussy(False)
    fussy = Fussy(True)
    with pytest.raises(TypeError, match="^still not ok$"):
        fussy.check(False)
    assert fussy.version == 1 and len(fussy.pending_events) == 1


def test_recorded_state_other_than_the_fields_is_passed_on() -> None:
    # An upcast may add or drop keys: whatever was recorded goes to
    # __init__ and to the method, as in the general path.
    class Upcast(Aggregate):
        def __init__(self, a: Any, b: Any = "default") -> None:
            self.ab = (a, b)

        @event("Moved")
        def move(self, to: Any, speed: Any = "slow") -> None:
            self.moved = (to, speed)

    agg = Upcast(1, 2)
    agg.move("x")
    created, moved = agg.collect_events()
    for domain_event, key in ((created, "b"), (moved, "speed")):
        del domain_event.__dict__[key]
    assert replay([created, moved]).ab == (1, "default")
    assert replay([created, moved]).moved == ("x", "slow")
    created.__dict__["c"] = 3
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        created.mutate(None)
    del created.__dict__["originator_id"]
    with pytest.raises(KeyError):
        created.mutate(None)


def test_overridden_aggregate_properties_are_used() -> None:
    class Audited(Aggregate):
        def __init__(self) -> None:
            self.sets = 0

        @property
        def version(self) -> int:
            return self._version

        @version.setter
        def version(self, value: int) -> None:
            self._version = value
            self.sets += 1

        @event("Touched")
        def touch(self) -> None:
            pass

    audited = Audited()
    audited.touch()
    assert audited.sets == 1
    assert replay(audited.collect_events()).sets == 1


# ---------------------------------------------------------------------------
# Module surface
# ---------------------------------------------------------------------------


def test_public_names() -> None:
    for name in [
        "TZINFO",
        "TAggregate",
        "TDomainEvent",
        "TAggregateEvent",
        "TAggregateCreated",
        "MetaDomainEvent",
        "DomainEvent",
        "AggregateEvent",
        "AggregateCreated",
        "CommandMethodDecorator",
        "event",
        "triggers",
        "UnboundCommandMethodDecorator",
        "BoundCommandMethodDecorator",
        "DecoratedEvent",
        "MetaAggregate",
        "Aggregate",
        "aggregate",
        "VersionError",
        "Snapshot",
        "original_methods",
        "raise_missing_names_type_error",
    ]:
        assert hasattr(domain, name), name
    assert resolve_topic("eventsourcing_rs.domain:Aggregate") is Aggregate


@pytest.mark.parametrize(
    "names, joined",
    [
        (["'a'"], "'a'"),
        (["'a'", "'b'"], "'a' and 'b'"),
        (["'a'", "'b'", "'c'"], "'a', 'b', and 'c'"),
    ],
)
def test_raise_missing_names_type_error(names: List[str], joined: str) -> None:
    with pytest.raises(TypeError) as caught:
        domain.raise_missing_names_type_error(names, "f() missing: ")
    assert str(caught.value) == f"f() missing: {joined}"
