"""The file registry's statuses `expired` (retention emptied every layer of the file) and
`erased` (`harmonizer erase --file`); both keep the file's SHA-256, so its content is not loaded again.

Revision ID: 0002
Revises: 0001
Create Date: 2027-01-18
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_CHECK = "ALTER TABLE ops.file_registry ADD CONSTRAINT file_registry_status CHECK (status IN ({}))"


def upgrade() -> None:
    op.execute("ALTER TABLE ops.file_registry DROP CONSTRAINT IF EXISTS file_registry_status")
    op.execute(_CHECK.format("'pending', 'loaded', 'blocked', 'failed', 'duplicate', 'expired', 'erased'"))


def downgrade() -> None:
    # Fails while a row is expired or erased: those files' rows are gone, no earlier status says so.
    op.execute("ALTER TABLE ops.file_registry DROP CONSTRAINT IF EXISTS file_registry_status")
    op.execute(_CHECK.format("'pending', 'loaded', 'blocked', 'failed', 'duplicate'"))
