"""mongoengine keeps one registry of document classes by class name; two services with a document
class of the same name leave one of them pointing at a closed connection after a restart."""
import collections
import importlib

from mongoengine import Document

from services.common.settings import SERVICE_NAMES


def test_document_class_names_are_unique_across_services():
    names = collections.Counter()
    for service in SERVICE_NAMES:
        module = importlib.import_module(f"services.{service}.models")
        names.update(name for name, value in vars(module).items()
                     if isinstance(value, type) and issubclass(value, Document) and value.__module__ == module.__name__)
    assert [name for name, count in names.items() if count > 1] == []
