"""Names shared by the service side (messaging.py) and the operator side (leadflow dead-letters) of
the dead-letter queue; kept free of eventlet so the command line does not import it."""
from kombu import Queue

DEAD_LETTER_QUEUE = "leadflow.dead_letters"
ATTEMPTS_HEADER = "x-leadflow-attempts"
ERROR_HEADER = "x-leadflow-error"
HANDLER_HEADER = "x-leadflow-handler"
ORIGINAL_QUEUE_HEADER = "x-leadflow-original-queue"


def dead_letter_queue() -> Queue:
    return Queue(DEAD_LETTER_QUEUE, durable=True)
