"""The domain model layer: domain events, aggregates, and snapshots.

Aggregates are written as ordinary Python classes. Calling an aggregate class
does not run ``__init__`` directly: it triggers a "created" event, and
``__init__`` runs when that event is applied. Methods decorated with
:func:`event` likewise trigger an event whose application runs the method
body, so an aggregate rebuilt from its stored events ends in the same state.

Argument checking on those calls mirrors the interpreter's own (same
``TypeError`` messages), but the parameter lists are analysed once per method
rather than on every call, because aggregate construction and command methods
sit on the hot path of every application.
"""

import inspect
import os
from abc import ABC, ABCMeta
from dataclasses import MISSING, dataclass, fields
from datetime import datetime, tzinfo
from functools import partial
from types import FunctionType, WrapperDescriptorType
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    Sequence,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)
from uuid import RFC_4122, UUID, uuid4
from weakref import WeakKeyDictionary, WeakSet

from eventsourcing_rs._core import instance_with_dict
from eventsourcing_rs._core import now as native_now
from eventsourcing_rs._core import uuid4 as native_uuid4
from eventsourcing_rs.utils import _objs_cache, get_method_name, get_topic, resolve_topic

# Time zone of event timestamps: the tzinfo object named by the topic in the
# TZINFO_TOPIC environment variable, UTC by default.
TZINFO: tzinfo = resolve_topic(os.getenv("TZINFO_TOPIC", "datetime:timezone.utc"))

TAggregate = TypeVar("TAggregate", bound="Aggregate")


def _uuid4_factory() -> Callable[[], UUID]:
    """Return a function that makes random (version 4) UUIDs.

    Every new aggregate needs one, and most of the cost of
    :func:`uuid.uuid4` is the argument checking in ``UUID.__init__``. The
    Rust core makes them from pooled OS randomness, setting the ``UUID``'s
    slots directly; where the ``UUID`` layout is not the known one, or a
    sample does not behave as :func:`uuid.uuid4`'s would, that is used.
    """
    if getattr(UUID, "__slots__", None) != ("int", "is_safe", "__weakref__"):
        return uuid4
    sample = native_uuid4()
    if (
        sample.version != 4
        or sample.variant != RFC_4122
        or UUID(str(sample)) != sample
        or hash(sample) != hash(UUID(int=sample.int))
    ):
        return uuid4
    return native_uuid4


_new_uuid4 = _uuid4_factory()

_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD
_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
_KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
_EMPTY = inspect.Parameter.empty


def _unused_name(name: str, taken: Set[str]) -> str:
    """Return ``name``, extended if need be to differ from ``taken``, and
    add it to ``taken``."""
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _closure_constant(name: str, value: Any, *, closure: Dict[str, Any], taken: Set[str]) -> str:
    """Return a name, unused so far (see :func:`_unused_name`), under which
    ``value`` is passed to generated source through ``closure``."""
    name = _unused_name(name, taken)
    closure[name] = value
    return name


def _compile_function(
    name: str, params: List[str], body: List[str], namespace: Dict[str, Any]
) -> Callable[..., Any]:
    """Define a function from source lines; ``namespace`` holds the names the
    source refers to (defaults, mostly)."""
    source = f"def {name}({', '.join(params)}):\n"
    source += "".join(f"    {line}\n" for line in body or ["pass"])
    exec(source, namespace)
    return cast(Callable[..., Any], namespace[name])


def _generate_event_init(event_cls: type) -> Callable[..., None] | None:
    """Return a faster ``__init__`` for a frozen dataclass event class, or
    None when the class uses dataclass features it wouldn't honour.

    The dataclass-generated ``__init__`` of a frozen class stores each field
    with ``object.__setattr__``; writing to the instance dict is
    equivalent for plain fields, and about twice as fast. The parameters are
    the same, so argument errors read the same.
    """
    event_fields = fields(event_cls)
    declared = getattr(event_cls, "__dataclass_fields__", {})
    if hasattr(event_cls, "__post_init__") or len(event_fields) != len(declared):
        # __post_init__, InitVar and ClassVar pseudo-fields.
        return None
    taken = {f.name for f in event_fields}
    instance = _unused_name("self", taken)
    state = _unused_name("state", taken)
    params = [instance]
    body = [f"{state} = {instance}.__dict__"]
    namespace: Dict[str, Any] = {}
    for field in event_fields:
        if not field.init or field.kw_only or field.default_factory is not MISSING:
            return None
        if field.default is MISSING:
            params.append(field.name)
        else:
            default_name = _unused_name(f"default_{field.name}", taken)
            namespace[default_name] = field.default
            params.append(f"{field.name}={default_name}")
        body.append(f"{state}[{field.name!r}] = {field.name}")
    init = _compile_function("__init__", params, body, namespace)
    init.__qualname__ = f"{event_cls.__qualname__}.__init__"
    init.__module__ = event_cls.__module__
    return init


# ---------------------------------------------------------------------------
# State of the specialised fast paths (see "Specialised fast paths" below).
# ---------------------------------------------------------------------------

_new_object = object.__new__

# The specialised creator of each aggregate class (None: take the general
# path), made on the first call of the class.
_creators: Dict[type, Callable[..., Any] | None] = {}

# Whether a class is an aggregate class whose __new__, base attributes and
# properties are Aggregate's own, so their attributes can be used directly.
_plain_aggregate_classes: Dict[type, bool] = {}

# Every @event decorator; each holds its specialised triggers by class.
_decorators: "WeakSet[CommandMethodDecorator]" = WeakSet()

# The specialised AggregateEvent.mutate() of each event class, and the
# specialised rebuilding from a created event of each aggregate class.
_event_mutators: Dict[type, Callable[[Any, Any], Any] | None] = {}
_rebuilders: Dict[type, Callable[[Dict[str, Any]], Any] | None] = {}

# The parameters (after the instance) of each @event method, as analysed
# for its decorator, so specialising the mutation of its events needn't
# inspect it again. (They don't refer to the method, so it can be dropped.)
_method_parameters: "WeakKeyDictionary[Callable[..., Any], Tuple[inspect.Parameter, ...]]" = (
    WeakKeyDictionary()
)

_has_specialisations = False


def _forget_specialisations() -> None:
    """Drop every specialised fast path: called whenever an aggregate or
    event class is changed, since they rely on what the classes were."""
    global _has_specialisations
    if _has_specialisations:
        _has_specialisations = False
        _creators.clear()
        _plain_aggregate_classes.clear()
        _event_mutators.clear()
        _rebuilders.clear()
        for decorator in list(_decorators):
            decorator._fast_triggers.clear()


# The __init__ generated for each event class, by class: an event class
# whose __init__ is still this one stores exactly its fields, in field order.
_generated_event_inits: "WeakKeyDictionary[type, Callable[..., None]]" = WeakKeyDictionary()


class MetaDomainEvent(ABCMeta):
    """Metaclass that makes every domain event class a frozen dataclass."""

    def __new__(
        mcs,
        name: str,
        bases: Tuple[type, ...],
        namespace: Dict[str, Any],
        **kwargs: Any,
    ) -> "MetaDomainEvent":
        event_cls: Any = super().__new__(mcs, name, bases, namespace, **kwargs)
        event_cls = dataclass(frozen=True)(event_cls)
        # Events are constructed for every command, so the dataclass
        # __init__ is replaced where that is equivalent (but never one the
        # class defines itself).
        if "__init__" not in namespace:
            init = _generate_event_init(event_cls)
            if init is not None:
                setattr(event_cls, "__init__", init)  # noqa: B010
                _generated_event_inits[event_cls] = init
        return cast(MetaDomainEvent, event_cls)

    def __init__(cls, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    # The specialised fast paths (see "Specialised fast paths" below) assume
    # what they saw of the event classes when they were made.
    def __setattr__(cls, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        _forget_specialisations()

    def __delattr__(cls, name: str) -> None:
        super().__delattr__(name)
        _forget_specialisations()


class DomainEvent(ABC, metaclass=MetaDomainEvent):
    """Base class of domain events, such as aggregate events and snapshots.

    Events are immutable and are constructed with keyword arguments.

    :param UUID originator_id: ID of the aggregate the event belongs to
    :param int originator_version: position of the event in that aggregate's
        sequence
    :param datetime timestamp: when the event happened
    """

    originator_id: UUID
    originator_version: int
    timestamp: datetime


class AggregateEvent(DomainEvent, Generic[TAggregate]):
    """Base class of the events that record decisions of aggregates.

    Subclasses usually override :meth:`apply`, which changes the aggregate;
    :meth:`mutate` checks the event is the aggregate's next one, applies it,
    and advances the aggregate's version and modification time.
    """

    def mutate(self, obj: TAggregate | None) -> TAggregate | None:
        """Apply this event to ``obj`` and return the updated aggregate.

        Raises :class:`VersionError` unless the event's version is the one
        after the aggregate's current version.
        """
        assert obj is not None, f"{type(self).__qualname__} needs an aggregate"
        try:
            mutate = _event_mutators[type(self)]
        except KeyError:
            mutate = _specialise_mutation(type(self))
        if mutate is None:
            return _mutate_generally(self, obj)
        return cast(TAggregate, mutate(self, obj))

    def apply(self, aggregate: TAggregate) -> None:
        """Change the state of ``aggregate`` to reflect this event.

        The base implementation changes nothing; return values are not
        allowed, because they would be silently lost.
        """


def _mutate_generally(event: AggregateEvent[Any], obj: Any) -> Any:
    """What AggregateEvent.mutate() does, for any event and aggregate."""
    try:
        plain = _plain_aggregate_classes[type(obj)]
    except KeyError:
        plain = _is_plain_aggregate_class(type(obj))
    if plain:
        # The version and modified_on properties are Aggregate's own, so
        # their attributes are used directly.
        next_version = obj._version + 1
        if event.originator_version != next_version:
            raise VersionError(event.originator_version, next_version)
        if event.apply(obj) is not None:  # type: ignore[func-returns-value]
            raise TypeError(
                f"Unexpected value returned from {type(event).apply.__qualname__}()."
                " Values returned from 'apply' methods are discarded."
            )
        obj._version = event.originator_version
        obj._modified_on = event.timestamp
        return obj
    next_version = obj.version + 1
    if event.originator_version != next_version:
        raise VersionError(event.originator_version, next_version)
    if event.apply(obj) is not None:  # type: ignore[func-returns-value]
        raise TypeError(
            f"Unexpected value returned from {type(event).apply.__qualname__}()."
            " Values returned from 'apply' methods are discarded."
        )
    obj.version = event.originator_version
    obj.modified_on = event.timestamp
    return obj


class AggregateCreated(AggregateEvent["Aggregate"]):
    """Base class of the events that start an aggregate's sequence.

    Besides the fields of every event it records ``originator_topic``, the
    topic of the aggregate class, so the aggregate can be rebuilt from it.
    Its other fields are passed to the aggregate's ``__init__``.
    """

    originator_topic: str

    def mutate(self, obj: TAggregate | None) -> TAggregate:
        """Construct and return a new aggregate from this event."""
        assert obj is None, f"{type(self).__qualname__} starts a new aggregate"
        state = self.__dict__
        topic = state["originator_topic"]
        # The topic is resolved every time (the cache may have been changed
        # to point it elsewhere); a cached topic is read without a call.
        aggregate_class = _objs_cache.get(topic)
        if aggregate_class is None:
            aggregate_class = resolve_topic(topic)
        try:
            rebuild = _rebuilders[aggregate_class]
        except (KeyError, TypeError):
            rebuild = _specialise_rebuilding(aggregate_class)
        if rebuild is not None:
            agg = rebuild(state)
            if agg is not None:
                return cast(TAggregate, agg)
        # Everything recorded besides the four base fields goes to __init__,
        # even keys that are not fields (an upcast may have added them).
        init_kwargs = state.copy()
        del init_kwargs["originator_topic"]
        try:
            plain = _plain_aggregate_classes[aggregate_class]
        except (KeyError, TypeError):
            plain = _is_plain_aggregate_class(aggregate_class)
        if plain:
            # What Aggregate.__new__ and Aggregate.__base_init__ do, without
            # the two calls.
            agg = _new_object(aggregate_class)
            agg._id = agg_id = init_kwargs.pop("originator_id")
            agg._version = init_kwargs.pop("originator_version")
            agg._created_on = agg._modified_on = init_kwargs.pop("timestamp")
            agg._pending_events = []
        else:
            agg = aggregate_class.__new__(aggregate_class)
            agg_id = init_kwargs.pop("originator_id")
            Aggregate.__base_init__(
                agg,
                agg_id,
                init_kwargs.pop("originator_version"),
                init_kwargs.pop("timestamp"),
            )
        if aggregate_class._init_mentions_id:
            init_kwargs["id"] = agg_id
        aggregate_class.__init__(agg, **init_kwargs)
        return cast(TAggregate, agg)


TDomainEvent = TypeVar("TDomainEvent", bound=DomainEvent)
TAggregateEvent = TypeVar("TAggregateEvent", bound=AggregateEvent[Any])
TAggregateCreated = TypeVar("TAggregateCreated", bound=AggregateCreated)


# ---------------------------------------------------------------------------
# Binding call arguments to method parameters.
# ---------------------------------------------------------------------------


def _parameters_after_self(
    method: Union[FunctionType, WrapperDescriptorType, Callable[..., Any]],
) -> List[inspect.Parameter]:
    """Return a method's parameters without the leading instance parameter."""
    parameters = list(inspect.signature(method).parameters.values())
    if parameters and parameters[0].kind in (_POSITIONAL_ONLY, _POSITIONAL_OR_KEYWORD):
        del parameters[0]
    return parameters


def _check_no_variable_params(
    method: Union[FunctionType, WrapperDescriptorType, Callable[..., Any]],
) -> None:
    """Refuse methods whose parameters can't be recorded as event fields."""
    for parameter in _parameters_after_self(method):
        if parameter.kind is _VAR_POSITIONAL:
            raise TypeError("variable positional parameters not supported")
        if parameter.kind is _VAR_KEYWORD:
            raise TypeError("variable keyword parameters not supported")


def _join_names(names: Sequence[str]) -> str:
    """Join names the way the interpreter lists missing arguments."""
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return ", ".join(names[:-1]) + f", and {names[-1]}"


def _quoted_names(names: Iterable[str]) -> str:
    return _join_names([f"'{name}'" for name in names])


def _parameter_list(
    parameters: Sequence[inspect.Parameter], taken: Set[str], namespace: Dict[str, Any]
) -> List[str]:
    """Return the source of a parameter list like ``parameters``, with the
    defaults put in ``namespace`` under names not in ``taken``."""
    params = []
    star_written = False
    for parameter in parameters:
        if parameter.kind is _KEYWORD_ONLY and not star_written:
            params.append("*")
            star_written = True
        if parameter.default is _EMPTY:
            params.append(parameter.name)
        else:
            default_name = _unused_name(f"default_{parameter.name}", taken)
            namespace[default_name] = parameter.default
            params.append(f"{parameter.name}={default_name}")
    return params


def raise_missing_names_type_error(missing_names: List[str], msg: str) -> None:
    """Raise a TypeError whose message is ``msg`` followed by the given names.

    The names are expected to be quoted already; they are joined as the
    interpreter joins them ("'a'", "'a' and 'b'", "'a', 'b', and 'c'").
    """
    raise TypeError(msg + _join_names(missing_names))


class _BoundSignature:
    """What a method accepts, analysed once, so calls can be bound cheaply.

    :meth:`bind` turns positional and keyword arguments into one dict of
    keyword arguments, with defaults filled in. The binding is done by a
    function generated with the same parameters as the method, so the
    interpreter binds the arguments natively; only a call that doesn't fit
    is analysed in Python, to word the ``TypeError`` as the method would.
    """

    __slots__ = (
        "method",
        "method_parameters",
        "parameters",
        "positional",
        "required_positional",
        "keyword_only",
        "required_keyword_only",
        "_binder",
    )

    def __init__(
        self,
        method: Union[FunctionType, WrapperDescriptorType, Callable[..., Any]],
        expects_id: bool = False,
    ) -> None:
        self.method = method
        bound: List[inspect.Parameter] = []
        # A dataclass field annotated "id" is taken out of the generated
        # __init__ (it becomes the aggregate ID), yet callers still pass it
        # first, so it is bound as a leading required positional argument.
        parameters = _parameters_after_self(method)
        self.method_parameters = tuple(parameters)
        if expects_id and all(p.name != "id" for p in parameters):
            bound.append(inspect.Parameter("id", _POSITIONAL_OR_KEYWORD))
        # Positional-only and variadic parameters can't be recorded as named
        # event fields, so they are never bound.
        bound.extend(p for p in parameters if p.kind in (_POSITIONAL_OR_KEYWORD, _KEYWORD_ONLY))
        self.parameters = tuple(bound)
        self.positional = tuple(p.name for p in bound if p.kind is not _KEYWORD_ONLY)
        self.keyword_only = tuple(p.name for p in bound if p.kind is _KEYWORD_ONLY)
        self.required_positional = tuple(
            p.name for p in bound if p.kind is not _KEYWORD_ONLY and p.default is _EMPTY
        )
        self.required_keyword_only = tuple(
            p.name for p in bound if p.kind is _KEYWORD_ONLY and p.default is _EMPTY
        )
        self._binder = self._generate_binder(bound)

    def _generate_binder(
        self, parameters: List[inspect.Parameter]
    ) -> Callable[..., Dict[str, Any]]:
        taken = {p.name for p in parameters}
        # The leading placeholder stands for the instance, so the counts in
        # the interpreter's messages include it, as they do for methods.
        params = [_unused_name("self", taken)]
        namespace: Dict[str, Any] = {}
        params += _parameter_list(parameters, taken, namespace)
        items = ", ".join(f"{p.name!r}: {p.name}" for p in parameters)
        func_name = getattr(self.method, "__name__", "")
        if not func_name.isidentifier():
            func_name = "bind"
        binder = _compile_function(func_name, params, [f"return {{{items}}}"], namespace)
        binder.__qualname__ = getattr(self.method, "__qualname__", func_name)
        return binder

    def bind(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """Return a new dict of all the arguments by name."""
        try:
            return self._binder(None, *args, **kwargs)
        except TypeError as native_error:
            error = self._explain(args, kwargs) or native_error
        raise error

    def _explain(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> TypeError | None:
        """Describe why a call doesn't fit.

        Problems are looked for in the order eventsourcing 9.1 reports them:
        unknown keywords, surplus positional arguments, missing positional
        arguments, arguments given twice, missing keyword-only arguments.
        """
        name = get_method_name(self.method)
        for key in kwargs:
            if key not in self.positional and key not in self.keyword_only:
                return TypeError(f"{name}() got an unexpected keyword argument '{key}'")
        num_args = len(args)
        if num_args > len(self.positional):
            num_allowed = len(self.positional) + 1
            return TypeError(
                f"{name}() takes {num_allowed} positional "
                f"argument{'' if num_allowed == 1 else 's'} "
                f"but {num_args + 1} were given"
            )
        # Positional arguments fill the leading names, so what is missing is
        # whatever is left after them of the names not passed by keyword.
        unfilled = [n for n in self.required_positional if n not in kwargs]
        missing = unfilled[num_args:]
        if missing:
            return TypeError(
                f"{name}() missing {len(missing)} required positional "
                f"argument{'' if len(missing) == 1 else 's'}: "
                f"{_quoted_names(missing)}"
            )
        for key in self.positional[:num_args]:
            if key in kwargs:
                return TypeError(f"{name}() got multiple values for argument '{key}'")
        missing = [n for n in self.required_keyword_only if n not in kwargs]
        if missing:
            return TypeError(
                f"{name}() missing {len(missing)} required keyword-only "
                f"argument{'' if len(missing) == 1 else 's'}: "
                f"{_quoted_names(missing)}"
            )
        return None


# ---------------------------------------------------------------------------
# The @event decorator.
# ---------------------------------------------------------------------------

# The method each decorated event class applies, by event class.
original_methods: Dict[MetaDomainEvent, FunctionType] = {}


class CommandMethodDecorator:
    """What :func:`event` returns: turns an aggregate method into a command.

    Calling the decorated method on an aggregate triggers an event whose
    fields are the method's arguments; applying the event calls the original
    method. The event class is either named (and then defined automatically
    from the method's parameters when the aggregate class is created) or
    given explicitly.
    """

    def __init__(self, arg: Union[Callable[..., Any], str, Type[AggregateEvent[Any]]]):
        self.is_name_inferred_from_method = False
        self.given_event_cls: Type[AggregateEvent[Any]] | None = None
        self.event_cls_name: str | None = None
        self.is_property_setter = False
        self.property_setter_arg_name: str | None = None
        self.is_decorating_a_property = False
        self.decorated_property: property | None = None
        self.original_method: FunctionType | None = None
        self._signature: _BoundSignature | None = None
        # The specialised trigger function by aggregate class (None where the
        # general path must be taken); see _specialise_trigger().
        self._fast_triggers: Dict[type, Callable[..., None] | None] = {}
        _decorators.add(self)

        if isinstance(arg, str):
            self.initialise_from_explicit_name(event_cls_name=arg)
        elif isinstance(arg, type) and issubclass(arg, AggregateEvent):
            self.initialise_from_event_cls(event_cls=arg)
        elif isinstance(arg, FunctionType):
            self.initialise_from_decorated_method(original_method=arg)
        elif isinstance(arg, property):
            setter_name = getattr(arg.fset, "__name__", "")
            raise TypeError(f"@event on {setter_name}() property setter requires event class name")
        elif isinstance(arg, staticmethod):
            raise TypeError(
                f"{arg.__func__.__name__}() staticmethod can't be used to update aggregate state"
            )
        elif isinstance(arg, classmethod):
            raise TypeError(
                f"{arg.__func__.__name__}() classmethod can't be used to update aggregate state"
            )
        else:
            raise TypeError(f"Unsupported usage: {type(arg)} is not a str or function")

    def initialise_from_decorated_method(self, original_method: FunctionType) -> None:
        """Decorate ``original_method``, naming the event after it."""
        self.original_method = original_method
        method_name = original_method.__name__
        # __init__ triggers the "created" event, whose name comes from
        # elsewhere (an explicit name or class, or the default "Created").
        if method_name != "__init__":
            self.is_name_inferred_from_method = True
            self.event_cls_name = "".join(part.capitalize() for part in method_name.split("_"))
        _check_no_variable_params(original_method)

    def initialise_from_event_cls(self, event_cls: Type[AggregateEvent[Any]]) -> None:
        """Use ``event_cls`` as the event class of the decorated method."""
        self.given_event_cls = event_cls

    def initialise_from_explicit_name(self, event_cls_name: str) -> None:
        """Use ``event_cls_name`` as the name of the event class to define."""
        if event_cls_name == "":
            raise ValueError("Can't use empty string as name of event class")
        self.event_cls_name = event_cls_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.original_method is None:
            # Given a name or a class, the decorator is now given the method.
            return self._decorate(*args, **kwargs)
        # Otherwise this decorator is the setter of a property, and the
        # property is calling it with the aggregate and the assigned value.
        if len(args) != 2 or kwargs:
            raise TypeError(
                f"{get_method_name(self.original_method)}() property setter "
                "takes an aggregate and a value"
            )
        aggregate, value = args
        self._call(aggregate, (), {self._setter_arg_name(): value})
        return None

    def _decorate(self, *args: Any, **kwargs: Any) -> "CommandMethodDecorator":
        if len(args) != 1 or kwargs:
            raise TypeError("Unsupported usage: decorate one method or property")
        arg = args[0]
        if isinstance(arg, FunctionType):
            _check_no_variable_params(arg)
            self.original_method = arg
        elif isinstance(arg, property):
            if arg.fset is None:
                getter_name = getattr(arg.fget, "__name__", "")
                raise TypeError(f"@event can't decorate {getter_name}() property getter")
            if not isinstance(arg.fset, FunctionType):
                raise TypeError(f"Unsupported usage: {type(arg.fset)} is not a FunctionType")
            _check_no_variable_params(arg.fset)
            self.is_decorating_a_property = True
            self.decorated_property = arg
            self.original_method = arg.fset
            self.property_setter_arg_name = self._setter_arg_name()
        else:
            raise ValueError(f"Unsupported usage: {type(arg)} is not a str or a FunctionType")
        given = self.given_event_cls
        if given is not None:
            if given in original_methods:
                raise TypeError(f"{given.__name__} event class used in more than one decorator")
            if "apply" in given.__dict__:
                raise TypeError(f"{given.__name__} event class has unexpected apply() method")
            # The given class is applied by calling the decorated method.
            setattr(given, "apply", DecoratedEvent.apply)  # noqa: B010
            original_methods[cast(MetaDomainEvent, given)] = self.original_method
        return self

    def _setter_arg_name(self) -> str:
        if self.property_setter_arg_name is None:
            assert self.original_method is not None
            names = [p.name for p in _parameters_after_self(self.original_method)]
            if len(names) != 1:
                raise TypeError(
                    f"{self.original_method.__name__}() property setter must take exactly one value"
                )
            self.property_setter_arg_name = names[0]
        return self.property_setter_arg_name

    def _get_signature(self) -> _BoundSignature:
        signature = self._signature
        if signature is None:
            assert self.original_method is not None
            signature = _BoundSignature(self.original_method)
            self._signature = signature
            _method_parameters[self.original_method] = signature.method_parameters
        return signature

    def _call(self, aggregate: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        """Trigger the event for a call of the method with ``args`` and
        ``kwargs``, by the specialised function where there is one."""
        try:
            trigger = self._fast_triggers[type(aggregate)]
        except KeyError:
            trigger = _specialise_trigger(self, type(aggregate))
        if trigger is None:
            self._trigger(aggregate, args, kwargs)
        else:
            trigger(aggregate, args, kwargs)

    def _trigger(
        self, aggregate: "Aggregate", args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> None:
        kwargs = (self._signature or self._get_signature()).bind(args, kwargs)
        event_cls = self.given_event_cls
        if event_cls is None:
            # Looked up on the aggregate, so a subclass may redefine it.
            event_cls = getattr(aggregate, cast(str, self.event_cls_name))
        aggregate.trigger_event(event_cls, **kwargs)

    def __get__(
        self, instance: TAggregate | None, owner: "MetaAggregate"
    ) -> Union["BoundCommandMethodDecorator", "UnboundCommandMethodDecorator", Any]:
        if self.is_decorating_a_property:
            assert self.decorated_property is not None
            return self.decorated_property.__get__(instance, owner)
        if instance is None:
            return UnboundCommandMethodDecorator(self)
        # Made for every call of the method, so without calling __init__.
        bound = _new_object(BoundCommandMethodDecorator)
        bound.event_decorator = self
        bound.aggregate = instance
        return bound

    def __set__(self, instance: TAggregate, value: Any) -> None:
        if not self.is_decorating_a_property:
            assert self.original_method is not None
            raise AttributeError(
                f"can't assign to {self.original_method.__name__}(): it is an @event method"
            )
        self._call(instance, (), {self._setter_arg_name(): value})


def event(
    arg: Union[FunctionType, str, Type[AggregateEvent[Any]]] | None = None,
) -> CommandMethodDecorator:
    """Decorate an aggregate method so that calling it triggers an event.

    The method body becomes the way the event is applied, both when the
    method is called and when the aggregate is rebuilt from stored events::

        class Dog(Aggregate):
            @event("Renamed")
            def rename(self, name: str) -> None:
                self.name = name

    The event class ``Dog.Renamed`` is defined from the method's parameters.
    Without a name (``@event``) the class is named after the method
    (``add_trick`` gives ``AddTrick``). An existing event class may be given
    instead of a name, for example to define upcasting on it. Decorating
    ``__init__`` chooses the aggregate's "created" event.
    """
    if arg is None:
        return event  # type: ignore[return-value]
    return CommandMethodDecorator(arg)


triggers = event


class UnboundCommandMethodDecorator:
    """An @event method looked up on the aggregate class (not callable)."""

    def __init__(self, event_decorator: CommandMethodDecorator):
        assert event_decorator.original_method is not None
        self.event_decorator = event_decorator
        self.__qualname__ = event_decorator.original_method.__qualname__
        self.__name__ = event_decorator.original_method.__name__


class BoundCommandMethodDecorator:
    """An @event method looked up on an aggregate: calling it triggers the event."""

    __slots__ = ("event_decorator", "aggregate")

    def __init__(self, event_decorator: CommandMethodDecorator, aggregate: Any):
        self.event_decorator = event_decorator
        self.aggregate = aggregate

    def __getattr__(self, name: str) -> Any:
        # The names are read rarely (messages, introspection), so they are
        # looked up on demand rather than copied on every method lookup.
        if name in ("__name__", "__qualname__"):
            return getattr(self.event_decorator.original_method, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def trigger(self, *args: Any, **kwargs: Any) -> None:
        """Trigger the decorated method's event with the given arguments."""
        self(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        # CommandMethodDecorator._call(), inlined: this is every command.
        aggregate = self.aggregate
        decorator = self.event_decorator
        try:
            trigger = decorator._fast_triggers[type(aggregate)]
        except KeyError:
            trigger = _specialise_trigger(decorator, type(aggregate))
        if trigger is None:
            decorator._trigger(aggregate, args, kwargs)
        else:
            trigger(aggregate, args, kwargs)


class DecoratedEvent(AggregateEvent[Any]):
    """Base class of the event classes defined for @event methods."""

    def apply(self, aggregate: Any) -> None:
        """Apply the event by calling the decorated method with its fields."""
        method_kwargs = self.__dict__.copy()
        del method_kwargs["originator_id"]
        del method_kwargs["originator_version"]
        del method_kwargs["timestamp"]
        method = original_methods[type(self)]
        if method(aggregate, **method_kwargs) is not None:
            raise TypeError(
                f"Unexpected value returned from {method.__qualname__}(). Values "
                "returned from 'apply' methods are discarded."
            )


# ---------------------------------------------------------------------------
# Aggregates.
# ---------------------------------------------------------------------------


class MetaAggregate(ABCMeta):
    """Metaclass of aggregates.

    When an aggregate class is created it becomes a (mutable) dataclass, its
    "created" event class is chosen or defined, and an event class is
    defined for each @event method. Calling an aggregate class creates a new
    aggregate by triggering the created event.
    """

    _annotations_mention_id = False
    _init_mentions_id = False
    _created_event_class: Type[AggregateCreated] | None
    _create_id_param_names: List[str]
    _init_signature: _BoundSignature | None = None
    INITIAL_VERSION = 1

    def __new__(
        mcs,
        name: str,
        bases: Tuple[type, ...],
        namespace: Dict[str, Any],
        *,
        created_event_name: str | None = None,
        **kwargs: Any,
    ) -> "MetaAggregate":
        annotations = namespace.get("__annotations__")
        if annotations and "id" in annotations:
            # The ID is the aggregate's own business, not a dataclass field;
            # remember it was declared so calls can pass it.
            annotations = dict(annotations)
            del annotations["id"]
            namespace["__annotations__"] = annotations
            namespace["_annotations_mention_id"] = True
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        return cast(MetaAggregate, dataclass(eq=False, repr=False)(cls))

    def __init__(
        cls,
        name: str,
        bases: Tuple[type, ...],
        namespace: Dict[str, Any],
        *,
        created_event_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, bases, namespace, **kwargs)
        own = cls.__dict__

        created_event_class: Type[AggregateCreated] | None = None
        if "_created_event_class" in own:
            if created_event_name:
                raise TypeError("Can't use both '_created_event_class' and 'created_event_name'")
            created_event_class = own["_created_event_class"]

        init_method = own["__init__"]
        if isinstance(init_method, CommandMethodDecorator):
            init_decorator = init_method
            if created_event_name:
                raise TypeError("Can't use both 'created_event_name' and __init__ @event decorator")
            if created_event_class:
                raise TypeError(
                    "Can't use both '_created_event_class' and __init__ @event decorator"
                )
            if init_decorator.event_cls_name:
                created_event_name = init_decorator.event_cls_name
            elif init_decorator.given_event_cls:
                created_event_class = cast(Type[AggregateCreated], init_decorator.given_event_cls)
            else:
                raise TypeError("Neither name nor class given to __init__ @event decorator")
            init_method = init_decorator.original_method
            setattr(cls, "__init__", init_method)  # noqa: B010

        init_param_names: List[str] | None = None
        if callable(init_method):
            try:
                init_param_names = [p.name for p in _parameters_after_self(init_method)]
            except (TypeError, ValueError):
                init_param_names = None
        if init_param_names is not None:
            cls._init_mentions_id = "id" in init_param_names

        created_event_classes = {
            attr_name: value
            for attr_name, value in own.items()
            if isinstance(value, type) and issubclass(value, AggregateCreated)
        }
        if created_event_name and created_event_name in created_event_classes:
            created_event_class = created_event_classes[created_event_name]
        elif created_event_class is None:
            if created_event_name or not created_event_classes:
                created_event_class = cls._define_created_event_class(
                    created_event_name or "Created", init_method
                )
            elif len(created_event_classes) == 1:
                (created_event_class,) = created_event_classes.values()
            # With several candidates and no choice made, the class can't be
            # called; _create() may still be used with an explicit class.
        cls._created_event_class = created_event_class

        cls._define_decorated_event_classes()

        cls._create_id_param_names = [
            p.name
            for p in inspect.signature(cls.create_id).parameters.values()
            if p.kind in (_KEYWORD_ONLY, _POSITIONAL_OR_KEYWORD)
        ]

        # Analyse __init__ now rather than on the first call; __call__ does it
        # again only if __init__ is replaced later.
        try:
            cls._init_signature = _BoundSignature(
                cls.__init__,  # type: ignore[misc]
                expects_id=cls._annotations_mention_id,
            )
        except (TypeError, ValueError):
            # Not introspectable: left to __call__, which reports the problem
            # if the class is ever called.
            cls._init_signature = None

    def _define_created_event_class(
        cls, event_cls_name: str, init_method: Any
    ) -> Type[AggregateCreated]:
        _check_no_variable_params(init_method)
        annotations = {
            p.name: "typing.Any" for p in _parameters_after_self(init_method) if p.name != "id"
        }
        created_event_class = MetaDomainEvent(
            event_cls_name,
            (AggregateCreated,),
            {
                "__annotations__": annotations,
                "__module__": cls.__module__,
                "__qualname__": f"{cls.__qualname__}.{event_cls_name}",
            },
        )
        setattr(cls, event_cls_name, created_event_class)
        return cast(Type[AggregateCreated], created_event_class)

    def _define_decorated_event_classes(cls) -> None:
        own = cls.__dict__
        for attribute in list(own.values()):
            if isinstance(attribute, property) and isinstance(
                attribute.fset, CommandMethodDecorator
            ):
                decorator = attribute.fset
                if decorator.is_name_inferred_from_method:
                    # A property's name is a noun, not a past-tense event name.
                    assert decorator.original_method is not None
                    raise TypeError(
                        f"@event under {decorator.original_method.__name__}() "
                        "property setter requires event class name"
                    )
                decorator.is_property_setter = True
            elif isinstance(attribute, CommandMethodDecorator):
                decorator = attribute
            else:
                continue

            method = decorator.original_method
            assert method is not None
            param_names = [p.name for p in _parameters_after_self(method)]
            if decorator.is_property_setter:
                decorator._setter_arg_name()
            decorator._get_signature()
            if decorator.given_event_cls is not None:
                continue
            event_cls_name = cast(str, decorator.event_cls_name)
            if event_cls_name in own:
                raise TypeError(f"{event_cls_name} event already defined on {cls.__name__}")
            event_cls = MetaDomainEvent(
                event_cls_name,
                (DecoratedEvent,),
                {
                    "__annotations__": {n: "typing.Any" for n in param_names},
                    "__module__": cls.__module__,
                    "__qualname__": f"{cls.__qualname__}.{event_cls_name}",
                },
            )
            original_methods[event_cls] = method
            setattr(cls, event_cls_name, event_cls)

    # The specialised fast paths assume what they saw of the aggregate
    # classes when they were made.
    def __setattr__(cls, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        _forget_specialisations()

    def __delattr__(cls, name: str) -> None:
        super().__delattr__(name)
        _forget_specialisations()

    def __call__(cls: "MetaAggregate", *args: Any, **kwargs: Any) -> Any:
        try:
            create = _creators[cls]
        except KeyError:
            create = _specialise_creation(cls)
        if create is None:
            return _call_generally(cls, args, kwargs)
        return create(args, kwargs)

    @staticmethod
    def create_id(**kwargs: Any) -> UUID:
        """Return the ID of a new aggregate (a random UUID by default).

        Aggregate classes may redefine it; it is passed those of the
        creation arguments that it names.
        """
        return _new_uuid4()

    def _create(
        cls,
        event_class: Type[TAggregateCreated],
        *,
        id: UUID | None = None,  # noqa: A002
        **kwargs: Any,
    ) -> Any:
        """Create a new aggregate by triggering a "created" event.

        ``kwargs`` become fields of the event and arguments of ``__init__``.
        """
        try:
            if not id:
                names = cls._create_id_param_names
                if names:
                    id = cls.create_id(**{n: kwargs[n] for n in names if n in kwargs})
                else:
                    id = cls.create_id()
            created_event = event_class(  # type: ignore[call-arg]
                originator_topic=get_topic(cls),
                originator_id=id,
                originator_version=cls.INITIAL_VERSION,
                timestamp=datetime.now(TZINFO),
                **kwargs,
            )
        except TypeError as e:
            raise TypeError(
                f"Unable to construct 'aggregate created' event with class "
                f"{event_class.__qualname__} and keyword args {kwargs}: {e}"
            ) from e
        agg: Any = created_event.mutate(None)
        agg.pending_events.append(created_event)
        return agg


class Aggregate(ABC, metaclass=MetaAggregate):
    """Base class of aggregate roots.

    Subclasses may declare fields as a dataclass does, or define
    ``__init__``; either way calling the class triggers its "created" event.
    """

    class Event(AggregateEvent["Aggregate"]):
        """Base class for the events of this aggregate."""

    class Created(AggregateCreated):
        """The event that creates this aggregate."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        attrs = ", ".join(
            f"{name.lstrip('_')}={value!r}"
            for name, value in self.__dict__.items()
            if name != "_pending_events"
        )
        return f"{type(self).__name__}({attrs})"

    def __base_init__(
        self,
        id: UUID,  # noqa: A002
        version: int,
        timestamp: datetime,
    ) -> None:
        """Set the attributes every aggregate has, before ``__init__`` runs."""
        self._id = id
        self._version = version
        self._created_on = timestamp
        self._modified_on = timestamp
        self._pending_events: List[AggregateEvent[Any]] = []

    @property
    def id(self) -> UUID:
        """The aggregate's ID."""
        return self._id

    @property
    def version(self) -> int:
        """The version of the aggregate: that of the last event applied."""
        return self._version

    @version.setter
    def version(self, version: int) -> None:
        self._version = version

    @property
    def created_on(self) -> datetime:
        """When the aggregate was created."""
        return self._created_on

    @property
    def modified_on(self) -> datetime:
        """When the aggregate was last changed."""
        return self._modified_on

    @modified_on.setter
    def modified_on(self, modified_on: datetime) -> None:
        self._modified_on = modified_on

    @property
    def pending_events(self) -> List[AggregateEvent[Any]]:
        """Events triggered but not yet collected (for saving)."""
        return self._pending_events

    def trigger_event(
        self,
        event_class: Type[TAggregateEvent],
        **kwargs: Any,
    ) -> None:
        """Construct the next event of ``event_class``, apply it, and keep it
        as a pending event. ``kwargs`` are the event's own fields."""
        next_version = self.version + 1
        try:
            new_event = event_class(  # type: ignore[call-arg]
                originator_id=self.id,
                originator_version=next_version,
                timestamp=datetime.now(TZINFO),
                **kwargs,
            )
        except TypeError as e:
            raise TypeError(f"Can't construct event {event_class}: {e}") from e
        new_event.mutate(self)
        self.pending_events.append(new_event)

    def collect_events(self) -> List[AggregateEvent[Any]]:
        """Remove and return the pending events, oldest first."""
        pending = self._pending_events
        collected = pending[:]
        pending.clear()
        return collected


def _call_generally(cls: MetaAggregate, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """Bind the arguments to __init__ and create an aggregate with
    ``_create()``: what calling an aggregate class does, in general."""
    init_method = cls.__init__  # type: ignore[misc]
    signature = cls._init_signature
    if signature is None or signature.method is not init_method:
        signature = _BoundSignature(init_method, expects_id=cls._annotations_mention_id)
        cls._init_signature = signature
    kwargs = signature.bind(args, kwargs)
    created_event_class = cls._created_event_class
    if created_event_class is None:
        raise TypeError("attribute '_created_event_class' not set on class")
    return cls._create(created_event_class, **kwargs)


def aggregate(
    cls: Any | None = None, *, created_event_name: str | None = None
) -> Union[MetaAggregate, Callable[[Any], MetaAggregate]]:
    """Class decorator that makes a plain class an aggregate.

    ``@aggregate class Dog: ...`` is the same as
    ``class Dog(Aggregate): ...``. Use ``@aggregate(created_event_name=...)``
    to name the created event.
    """

    def decorator(original: Any) -> MetaAggregate:
        if issubclass(original, Aggregate):
            raise TypeError(f"{original.__name__} is already an Aggregate")
        bases = original.__bases__
        if bases == (object,):
            bases = (Aggregate,)
        else:
            bases = bases + (Aggregate,)
        # The instance __dict__ and __weakref__ descriptors belong to the
        # original class and would not work on instances of the new one.
        namespace = {
            key: value
            for key, value in original.__dict__.items()
            if key not in ("__dict__", "__weakref__")
        }
        namespace["__qualname__"] = original.__qualname__
        return MetaAggregate(
            original.__name__,
            bases,
            namespace,
            created_event_name=created_event_name,
        )

    if cls:
        return decorator(cls)
    return decorator


# ---------------------------------------------------------------------------
# Specialised fast paths.
# ---------------------------------------------------------------------------
#
# In general, creating an aggregate goes through binding the arguments,
# _create(), the created event's __init__, its mutate(), Aggregate.__new__,
# __base_init__ and the aggregate's __init__; and calling an @event method
# through binding, trigger_event(), the event's __init__, mutate(), apply(),
# and the aggregate's properties; and rebuilding an aggregate through
# mutate() and apply() with copies of the events' state. Where every one of
# those is the standard one (nothing overridden), a function generated for
# the class does the same work in one frame. These functions are made on
# first use and dropped whenever an aggregate or event class is changed, so
# they never act on an outdated view of a class. Anything else, and any call
# whose arguments don't fit, takes the general path (which words the error).

_aggregate_new = Aggregate.__new__
_aggregate_base_init = Aggregate.__base_init__
_aggregate_trigger_event = Aggregate.trigger_event
_aggregate_properties = {
    name: Aggregate.__dict__[name] for name in ("id", "version", "modified_on", "pending_events")
}
_meta_create = MetaAggregate.__dict__["_create"]
_meta_create_id = MetaAggregate.__dict__["create_id"].__func__
_aggregate_event_mutate = AggregateEvent.mutate
_aggregate_created_mutate = AggregateCreated.mutate
_decorated_event_apply = DecoratedEvent.apply
_BASE_EVENT_FIELDS = ("originator_id", "originator_version", "timestamp")
# Globals and builtins the generated functions read, so none of their
# parameters may be named so. The module's datetime and TZINFO are read on
# every call, as the general path reads them (a test clock may replace
# datetime, for instance).
_GENERATED_GLOBALS = frozenset(
    ("datetime", "TZINFO", "TypeError", "VersionError", "_new_uuid4", "len")
)


def _is_plain_aggregate_class(cls: Any) -> bool:
    """Tell (and remember) whether ``cls`` is an aggregate class whose
    ``__new__``, base attributes and properties are Aggregate's own."""
    global _has_specialisations
    if not isinstance(cls, MetaAggregate):
        return False
    plain = (
        cls.__new__ is _aggregate_new
        and Aggregate.__base_init__ is _aggregate_base_init
        and all(getattr(cls, name, None) is value for name, value in _aggregate_properties.items())
    )
    _plain_aggregate_classes[cls] = plain
    _has_specialisations = True
    return plain


def _fields_after(event_cls: Any, base: Sequence[str]) -> List[str] | None:
    """Return the names of the fields of ``event_cls`` after the ``base``
    ones, or None unless its fields start with those."""
    if not isinstance(event_cls, MetaDomainEvent):
        return None
    names = [f.name for f in fields(cast(Any, event_cls))]
    if names[: len(base)] != list(base):
        return None
    return names[len(base) :]


def _event_fields(event_cls: Any, base: Sequence[str]) -> List[str] | None:
    """Return the names of the fields of ``event_cls`` after the ``base``
    ones, or None unless its instances are made by a standard ``__new__``
    and the ``__init__`` generated for it (which stores exactly the fields,
    in field order)."""
    if not isinstance(event_cls, MetaDomainEvent):
        return None
    if (
        _generated_event_inits.get(event_cls) is not event_cls.__init__  # type: ignore[misc]
        or event_cls.__new__ is not object.__new__
    ):
        return None
    return _fields_after(event_cls, base)


def _call_arguments(
    parameters: Sequence[inspect.Parameter], names: Sequence[str], variables: Dict[str, str]
) -> str | None:
    """Return the source of the arguments (after the instance) of a call of
    a method with ``parameters`` (after the instance) that passes ``names``
    (from ``variables``), equivalent to passing them all by keyword; or None
    unless that call surely binds.

    Leading names are passed by position where that is the same.
    """
    supplied = set(names)
    if len(supplied) != len(names):
        return None
    arguments: List[str] = []
    matched: Set[str] = set()
    by_position = True
    takes_any_keyword = False
    for parameter in parameters:
        name = parameter.name
        if parameter.kind is _VAR_KEYWORD:
            takes_any_keyword = True
        elif parameter.kind is _VAR_POSITIONAL:
            by_position = False
        elif parameter.kind is _POSITIONAL_ONLY:
            return None
        elif name in supplied:
            matched.add(name)
            if by_position and parameter.kind is _POSITIONAL_OR_KEYWORD:
                arguments.append(variables[name])
            else:
                arguments.append(f"{name}={variables[name]}")
        elif parameter.default is _EMPTY:
            return None
        else:
            by_position = False
    for name in names:
        if name not in matched:
            if not takes_any_keyword:
                return None
            arguments.append(f"{name}={variables[name]}")
    return ", ".join(arguments)


def _define_specialised(
    name: str,
    qualname: str,
    closure: Dict[str, Any],
    params: List[str],
    body: List[str],
) -> Callable[..., Any]:
    """Define a function from source lines, with the module's globals and
    with ``closure`` (name to value) as variables of an enclosing scope.
    ``name`` must differ from the names in ``closure``, which it would hide.
    """
    assert name not in closure, name
    source = f"def __specialise__({', '.join(closure)}):\n"
    source += f"    def {name}({', '.join(params)}):\n"
    source += "".join(f"        {line}\n" for line in body)
    source += f"    return {name}\n"
    namespace: Dict[str, Any] = {}
    exec(source, globals(), namespace)
    func = cast(Callable[..., Any], namespace["__specialise__"](**closure))
    func.__qualname__ = qualname
    return func


def _binding_lines(
    parameters: Sequence[inspect.Parameter],
    args_var: str,
    kwargs_var: str,
    closure: Dict[str, Any],
    taken: Set[str],
    on_mismatch: str,
) -> List[str]:
    """Return source lines that bind a call's ``args`` and ``kwargs`` to
    variables named as the ``parameters``, or else return ``on_mismatch``.

    The generated functions take the argument tuple and dict as they are,
    rather than have them unpacked into their parameters, which costs more
    than picking out the values for the usual calls: all arguments given by
    position, or all by keyword. Other calls are bound by a function with
    the parameters, and calls that don't fit are left to ``on_mismatch``
    (the general path, which words the error as 9.1 does).
    """
    names = [p.name for p in parameters]
    if not names:
        return [f"if {args_var} or {kwargs_var}:", f"    return {on_mismatch}"]
    targets = "".join(f"{name}, " for name in names)
    namespace: Dict[str, Any] = {}
    binder = _compile_function(
        "bind",
        _parameter_list(parameters, set(names), namespace),
        [f"return {targets}"],
        namespace,
    )
    binder_var = _closure_constant("bind", binder, closure=closure, taken=taken)
    all_by_keyword = " and ".join(
        [f"not {args_var}", f"len({kwargs_var}) == {len(names)}"]
        + [f"{name!r} in {kwargs_var}" for name in names]
    )
    lines = [f"if {all_by_keyword}:"]
    lines += [f"    {name} = {kwargs_var}[{name!r}]" for name in names]
    if all(p.kind is not _KEYWORD_ONLY for p in parameters):
        lines += [
            f"elif not {kwargs_var} and len({args_var}) == {len(names)}:",
            f"    {targets}= {args_var}",
        ]
    lines += [
        "else:",
        "    try:",
        f"        {targets}= {binder_var}(*{args_var}, **{kwargs_var})",
        "    except TypeError:",
        f"        return {on_mismatch}",
    ]
    return lines


def _timestamp_line(timestamp_var: str, closure: Dict[str, Any], taken: Set[str]) -> str:
    """Return a source line that sets ``timestamp_var`` to
    ``datetime.now(TZINFO)``, with the method looked up beforehand while
    the module's ``datetime`` is the class it was looked up on."""
    datetime_var = _closure_constant("datetime_class", datetime, closure=closure, taken=taken)
    # datetime.now(tz), read from the clock in Rust when tz is UTC.
    now_var = _closure_constant("now", native_now, closure=closure, taken=taken)
    return (
        f"{timestamp_var} = {now_var}(TZINFO) if datetime is {datetime_var} "
        "else datetime.now(TZINFO)"
    )


def _new_aggregate_lines(
    agg_var: str, new_var: str, cls_var: str, id_var: str, version_var: str, timestamp_var: str
) -> List[str]:
    """Source lines making an aggregate as Aggregate.__new__ and
    __base_init__ do. Its attributes are set one by one (not given as a
    whole __dict__, as an event's are): its __init__ goes on to set more of
    them, which CPython stores most cheaply in an object made this way."""
    return [
        f"{agg_var} = {new_var}({cls_var})",
        f"{agg_var}._id = {id_var}",
        f"{agg_var}._version = {version_var}",
        f"{agg_var}._created_on = {timestamp_var}",
        f"{agg_var}._modified_on = {timestamp_var}",
        f"{agg_var}._pending_events = []",
    ]


def _specialise_creation(cls: MetaAggregate) -> Callable[..., Any] | None:
    """Return (and remember) the specialised creator of ``cls``, or None
    if calling ``cls`` must take the general path."""
    global _has_specialisations
    creator = _generate_creator(cls)
    _creators[cls] = creator
    _has_specialisations = True
    return creator


def _generate_creator(cls: MetaAggregate) -> Callable[..., Any] | None:
    """Generate a function of a call's arguments (tuple and dict) that
    does what calling ``cls`` with them does."""
    init = cls.__init__  # type: ignore[misc]
    signature = cls._init_signature
    created_event_class = cls._created_event_class
    if (
        signature is None
        or signature.method is not init
        or created_event_class is None
        or getattr(cls._create, "__func__", None) is not _meta_create
        or not _is_plain_aggregate_class(cls)
        or created_event_class.mutate is not _aggregate_created_mutate
    ):
        return None
    extra_fields = _event_fields(created_event_class, _BASE_EVENT_FIELDS + ("originator_topic",))
    bound = [p.name for p in signature.parameters]
    given = [name for name in bound if name != "id"]
    if (
        extra_fields is None
        or set(extra_fields) != set(given)
        or "originator_topic" in given
        or _GENERATED_GLOBALS.intersection(bound)
        # Arguments so named clash with the parameters of _create().
        or {"cls", "event_class"}.intersection(bound)
    ):
        return None

    taken = set(bound)
    closure: Dict[str, Any] = {}

    constant = partial(_closure_constant, closure=closure, taken=taken)

    id_var = "id" if "id" in bound else _unused_name("id", taken)
    init_names = list(extra_fields)
    if cls._init_mentions_id:
        init_names.append("id")
    init_arguments = _call_arguments(
        signature.method_parameters, init_names, {**{n: n for n in given}, "id": id_var}
    )
    if init_arguments is None:
        return None

    args_var = _unused_name("args", taken)
    kwargs_var = _unused_name("kwargs", taken)
    general_var = constant("call_generally", _call_generally)
    cls_var = constant("cls", cls)
    event_cls_var = constant("event_class", created_event_class)
    topic_var = constant("topic", get_topic(cls))
    objs_cache_var = constant("objs_cache", _objs_cache)
    new_var = constant("new_object", _new_object)
    init_var = constant("init", init)
    version_var = constant("initial_version", cls.INITIAL_VERSION)
    create_id_var = constant("create_id", cls.create_id)
    timestamp_var = _unused_name("timestamp", taken)
    event_var = _unused_name("event", taken)
    agg_var = _unused_name("agg", taken)
    error_var = _unused_name("error", taken)
    given_var = _unused_name("given", taken)

    # As in _create(): the topic is registered (as get_topic() does), the ID
    # made unless given, and the event constructed, with a TypeError from
    # any of that reported as a failure to construct the event.
    id_names = [n for n in given if n in cls._create_id_param_names]
    id_arguments = ", ".join(f"{n}={n}" for n in id_names)
    given_items = ", ".join(f"{n!r}: {n}" for n in given)
    make_id = [f"{id_var} = {create_id_var}({id_arguments})"]
    if cls.create_id is _meta_create_id:
        # The default create_id(), without the call.
        make_id = [f"{id_var} = _new_uuid4()"]
    if "id" in bound:
        make_id = [f"if not {id_var}:", f"    {make_id[0]}"]
    values = {
        "originator_id": id_var,
        "originator_version": version_var,
        "timestamp": timestamp_var,
        "originator_topic": topic_var,
        **{n: n for n in given},
    }
    field_names = [*_BASE_EVENT_FIELDS, "originator_topic", *extra_fields]
    with_dict_var = constant("instance_with_dict", instance_with_dict)
    base_attributes = _new_aggregate_lines(
        agg_var, new_var, cls_var, id_var, version_var, timestamp_var
    )
    body = _binding_lines(
        signature.parameters,
        args_var,
        kwargs_var,
        closure,
        taken,
        f"{general_var}({cls_var}, {args_var}, {kwargs_var})",
    )
    body += [
        "try:",
        f"    {objs_cache_var}[{topic_var}] = {cls_var}",
        *(f"    {line}" for line in make_id),
        f"    {_timestamp_line(timestamp_var, closure, taken)}",
        # The event's fields are its __dict__, made in one piece.
        f"    {event_var} = {with_dict_var}({event_cls_var}, {{",
        *(f"        {n!r}: {values[n]}," for n in field_names),
        "    })",
        f"except TypeError as {error_var}:",
        f"    {given_var} = {{{given_items}}}",
        "    raise TypeError(",
        "        \"Unable to construct 'aggregate created' event with class \"",
        f'        f"{{{event_cls_var}.__qualname__}} and keyword args {{{given_var}}}: '
        f'{{{error_var}}}"',
        f"    ) from {error_var}",
        # AggregateCreated.mutate(), with Aggregate.__new__ and __base_init__.
        *base_attributes,
        f"{init_var}({', '.join(filter(None, [agg_var, init_arguments]))})",
        f"{agg_var}._pending_events.append({event_var})",
        f"return {agg_var}",
    ]
    name = getattr(init, "__name__", "")
    if not name.isidentifier() or name in taken:
        name = _unused_name("create", taken)
    return _define_specialised(
        name, f"{cls.__qualname__}.{name}", closure, [args_var, kwargs_var], body
    )


def _specialise_trigger(decorator: CommandMethodDecorator, cls: type) -> Callable[..., None] | None:
    """Return (and remember) the specialised trigger function of
    ``decorator`` for aggregates of class ``cls``, or None if its calls
    must take the general path."""
    global _has_specialisations
    if not isinstance(cls, MetaAggregate):
        return None
    trigger = _generate_trigger(decorator, cls)
    decorator._fast_triggers[cls] = trigger
    _has_specialisations = True
    return trigger


def _generate_trigger(
    decorator: CommandMethodDecorator, cls: MetaAggregate
) -> Callable[..., None] | None:
    """Generate a function of an aggregate of class ``cls`` and a call's
    arguments (tuple and dict) that does what calling the decorated method
    on the aggregate with them does."""
    if decorator.original_method is None or not _is_plain_aggregate_class(cls):
        return None
    if cls.trigger_event is not _aggregate_trigger_event:  # type: ignore[attr-defined]
        return None
    try:
        signature = decorator._signature or decorator._get_signature()
    except (TypeError, ValueError):
        return None
    event_cls = decorator.given_event_cls
    if event_cls is None:
        event_cls = getattr(cls, cast(str, decorator.event_cls_name), None)
    if (
        not isinstance(event_cls, MetaDomainEvent)
        or event_cls.mutate is not _aggregate_event_mutate  # type: ignore[attr-defined]
        or event_cls.apply is not _decorated_event_apply  # type: ignore[attr-defined]
    ):
        return None
    applied = original_methods.get(event_cls)
    extra_fields = _event_fields(event_cls, _BASE_EVENT_FIELDS)
    given = [p.name for p in signature.parameters]
    if (
        # The method applied is the decorated one, whose signature is known.
        applied is not signature.method
        or extra_fields is None
        or set(extra_fields) != set(given)
        or _GENERATED_GLOBALS.intersection(given)
        # Arguments so named clash with the parameters of trigger_event().
        or {"self", "event_class"}.intersection(given)
    ):
        return None
    arguments = _call_arguments(signature.method_parameters, extra_fields, {n: n for n in given})
    if arguments is None:
        return None

    taken = set(given)
    closure: Dict[str, Any] = {}

    constant = partial(_closure_constant, closure=closure, taken=taken)

    aggregate_var = _unused_name("aggregate", taken)
    args_var = _unused_name("args", taken)
    kwargs_var = _unused_name("kwargs", taken)
    general_var = constant("trigger_generally", decorator._trigger)
    event_cls_var = constant("event_class", event_cls)
    applied_var = constant("method", applied)
    with_dict_var = constant("instance_with_dict", instance_with_dict)
    version_var = _unused_name("version", taken)
    timestamp_var = _unused_name("timestamp", taken)
    event_var = _unused_name("event", taken)
    originator_id_var = _unused_name("originator_id", taken)
    error_var = _unused_name("error", taken)
    values = {
        "originator_id": originator_id_var,
        "originator_version": version_var,
        "timestamp": timestamp_var,
        **{n: n for n in given},
    }
    body = _binding_lines(
        signature.parameters,
        args_var,
        kwargs_var,
        closure,
        taken,
        f"{general_var}({aggregate_var}, {args_var}, {kwargs_var})",
    )
    body += [
        # Aggregate.trigger_event(), with the event's __init__.
        f"{version_var} = {aggregate_var}._version + 1",
        "try:",
        f"    {originator_id_var} = {aggregate_var}._id",
        f"    {_timestamp_line(timestamp_var, closure, taken)}",
        # The event's fields are its __dict__, made in one piece.
        f"    {event_var} = {with_dict_var}({event_cls_var}, {{",
        *(f"        {n!r}: {values[n]}," for n in [*_BASE_EVENT_FIELDS, *extra_fields]),
        "    })",
        f"except TypeError as {error_var}:",
        f'    raise TypeError(f"Can\'t construct event {{{event_cls_var}}}: {{{error_var}}}")'
        f" from {error_var}",
        # AggregateEvent.mutate() (whose version check can't fail here) and
        # DecoratedEvent.apply().
        f"if {applied_var}({', '.join(filter(None, [aggregate_var, arguments]))}) is not None:",
        "    raise TypeError(",
        f'        f"Unexpected value returned from {{{applied_var}.__qualname__}}(). Values "',
        "        \"returned from 'apply' methods are discarded.\"",
        "    )",
        f"{aggregate_var}._version = {version_var}",
        f"{aggregate_var}._modified_on = {timestamp_var}",
        f"{aggregate_var}._pending_events.append({event_var})",
    ]
    method = decorator.original_method
    name = method.__name__ if method.__name__.isidentifier() else "trigger"
    if name in taken:
        name = _unused_name(name, taken)
    return _define_specialised(
        name, method.__qualname__, closure, [aggregate_var, args_var, kwargs_var], body
    )


def _specialise_rebuilding(cls: Any) -> Callable[[Dict[str, Any]], Any] | None:
    """Return (and remember) the specialised rebuilding of an aggregate of
    class ``cls`` from the state of a created event, or None if it must
    take the general path."""
    global _has_specialisations
    if not isinstance(cls, MetaAggregate):
        return None
    rebuild = _generate_rebuilder(cls)
    _rebuilders[cls] = rebuild
    _has_specialisations = True
    return rebuild


def _generate_rebuilder(cls: MetaAggregate) -> Callable[[Dict[str, Any]], Any] | None:
    """Generate a function that does what AggregateCreated.mutate() does
    once it has resolved the aggregate class ``cls``, given the event's
    state; it returns None, for the general path, unless the state has just
    the fields of the created event class of ``cls``."""
    init = cls.__init__  # type: ignore[misc]
    signature = cls._init_signature
    if signature is None or signature.method is not init or not _is_plain_aggregate_class(cls):
        return None
    extra_fields = _fields_after(
        cls._created_event_class, _BASE_EVENT_FIELDS + ("originator_topic",)
    )
    if extra_fields is None:
        return None
    taken: Set[str] = set()
    closure: Dict[str, Any] = {}
    constant = partial(_closure_constant, closure=closure, taken=taken)
    state_var = _unused_name("state", taken)
    cls_var = constant("cls", cls)
    new_var = constant("new_object", _new_object)
    init_var = constant("init", init)
    agg_var = _unused_name("agg", taken)
    id_var = _unused_name("originator_id", taken)
    version_var = _unused_name("originator_version", taken)
    timestamp_var = _unused_name("timestamp", taken)
    variables = {name: f"value_{i}" for i, name in enumerate(extra_fields)}
    variables["id"] = id_var
    init_names = list(extra_fields)
    if cls._init_mentions_id:
        init_names.append("id")
    init_arguments = _call_arguments(signature.method_parameters, init_names, variables)
    if init_arguments is None:
        return None
    reads = {
        id_var: "originator_id",
        version_var: "originator_version",
        timestamp_var: "timestamp",
        **{variables[name]: name for name in extra_fields},
    }
    body = [
        # Any other set of keys (an upcast may have changed them) takes the
        # general path. The topic was read already.
        f"if len({state_var}) != {len(reads) + 1}:",
        "    return None",
        "try:",
        *(f"    {var} = {state_var}[{name!r}]" for var, name in reads.items()),
        "except KeyError:",
        "    return None",
        *_new_aggregate_lines(agg_var, new_var, cls_var, id_var, version_var, timestamp_var),
        f"{init_var}({', '.join(filter(None, [agg_var, init_arguments]))})",
        f"return {agg_var}",
    ]
    name = _unused_name("rebuild", taken)
    return _define_specialised(name, f"{cls.__qualname__}.{name}", closure, [state_var], body)


def _specialise_mutation(event_cls: type) -> Callable[[Any, Any], Any] | None:
    """Return (and remember) the specialised AggregateEvent.mutate() of
    ``event_cls``, or None if its events must take the general path."""
    global _has_specialisations
    mutate = _generate_mutator(event_cls)
    _event_mutators[event_cls] = mutate
    _has_specialisations = True
    return mutate


def _generate_mutator(event_cls: type) -> Callable[[Any, Any], Any] | None:
    """Generate a function that does what AggregateEvent.mutate() does for
    an event of ``event_cls`` whose apply() is that of the @event methods;
    it leaves to the general path aggregates whose properties are not
    Aggregate's own, and events whose state has other keys than the fields.
    """
    if getattr(event_cls, "apply", None) is not _decorated_event_apply:
        return None
    method = original_methods.get(cast(MetaDomainEvent, event_cls))
    parameters = None if method is None else _method_parameters.get(method)
    extra_fields = _fields_after(event_cls, _BASE_EVENT_FIELDS)
    if parameters is None or extra_fields is None:
        return None
    variables = {name: f"value_{i}" for i, name in enumerate(extra_fields)}
    arguments = _call_arguments(parameters, extra_fields, variables)
    if arguments is None:
        return None
    taken: Set[str] = set()
    closure: Dict[str, Any] = {}
    constant = partial(_closure_constant, closure=closure, taken=taken)
    event_var = _unused_name("event", taken)
    obj_var = _unused_name("obj", taken)
    general_var = constant("mutate_generally", _mutate_generally)
    plain_var = constant("plain_classes", _plain_aggregate_classes)
    is_plain_var = constant("is_plain", _is_plain_aggregate_class)
    method_var = constant("method", method)
    state_var = _unused_name("state", taken)
    plain_result_var = _unused_name("plain", taken)
    version_var = _unused_name("version", taken)
    next_version_var = _unused_name("next_version", taken)
    timestamp_var = _unused_name("timestamp", taken)
    body = [
        f"{state_var} = {event_var}.__dict__",
        "try:",
        f"    {plain_result_var} = {plain_var}[type({obj_var})]",
        "except KeyError:",
        f"    {plain_result_var} = {is_plain_var}(type({obj_var}))",
        f"if {plain_result_var} and len({state_var}) == {len(extra_fields) + 3}:",
        "    try:",
        f"        {state_var}['originator_id']",
        f"        {version_var} = {state_var}['originator_version']",
        f"        {timestamp_var} = {state_var}['timestamp']",
        *(f"        {variables[name]} = {state_var}[{name!r}]" for name in extra_fields),
        "    except KeyError:",
        "        pass",
        "    else:",
        f"        {next_version_var} = {obj_var}._version + 1",
        f"        if {version_var} != {next_version_var}:",
        f"            raise VersionError({version_var}, {next_version_var})",
        # DecoratedEvent.apply().
        f"        if {method_var}({', '.join(filter(None, [obj_var, arguments]))}) is not None:",
        "            raise TypeError(",
        f'                f"Unexpected value returned from {{{method_var}.__qualname__}}(). "',
        "                \"Values returned from 'apply' methods are discarded.\"",
        "            )",
        f"        {obj_var}._version = {version_var}",
        f"        {obj_var}._modified_on = {timestamp_var}",
        f"        return {obj_var}",
        f"return {general_var}({event_var}, {obj_var})",
    ]
    name = _unused_name("mutate", taken)
    return _define_specialised(
        name, f"{event_cls.__qualname__}.{name}", closure, [event_var, obj_var], body
    )


class VersionError(Exception):
    """Raised when an event is not the next one in its aggregate's sequence.

    Its arguments are the event's version and the version that was expected.
    """


class Snapshot(DomainEvent):
    """The state of an aggregate at a version, recorded as an event.

    :param UUID originator_id: ID of the aggregate
    :param int originator_version: version of the aggregate
    :param datetime timestamp: when the snapshot was taken
    :param str topic: topic of the aggregate's class
    :param dict state: the aggregate's attributes
    """

    topic: str
    state: Dict[str, Any]

    @classmethod
    def take(cls, aggregate: Any) -> "Snapshot":
        """Return a snapshot of ``aggregate``.

        If the aggregate's class sets ``class_version`` above 1, it is stored
        with the state so older snapshots can be upcast later.
        """
        state = dict(aggregate.__dict__)
        state.pop("_pending_events")
        class_version = getattr(type(aggregate), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        originator_id = state.pop("_id")
        originator_version = state.pop("_version")
        return cls(  # type: ignore[call-arg]
            originator_id=originator_id,
            originator_version=originator_version,
            timestamp=datetime.now(TZINFO),
            topic=get_topic(type(aggregate)),
            state=state,
        )

    def mutate(self, _: None = None) -> Any:
        """Rebuild the aggregate recorded by this snapshot.

        State recorded by an older ``class_version`` of the aggregate class
        is upcast step by step with the class's ``upcast_vN_vM`` static
        methods.
        """
        cls = resolve_topic(self.topic)
        assert issubclass(cls, Aggregate), f"{self.topic!r} is not an aggregate"
        state = dict(self.state)
        from_version = state.pop("class_version", 1)
        class_version = getattr(cls, "class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        state["_id"] = self.originator_id
        state["_version"] = self.originator_version
        state["_pending_events"] = []
        agg = object.__new__(cls)
        agg.__dict__.update(state)
        return agg
