"""Amazon Connect Flow Language: model, loader/registry, sans-I/O interpreter, default flows."""

from flows.errors import FlowError, Problem
from flows.interpreter import ContactData, FlowRun, Result
from flows.loader import FlowRegistry, load_flow, parse_flow
from flows.model import EventHook, Flow

__all__ = [
    "ContactData",
    "EventHook",
    "Flow",
    "FlowError",
    "FlowRegistry",
    "FlowRun",
    "Problem",
    "Result",
    "load_flow",
    "parse_flow",
]
