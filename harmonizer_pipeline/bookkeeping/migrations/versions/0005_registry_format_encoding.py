"""The file registry keeps how each file was read: its format and text encoding as the readers
detected them (NULL for files loaded before, and for formats without an encoding), for the
file's plain-English summary.

Revision ID: 0005
Revises: 0004
Create Date: 2027-02-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ops.file_registry ADD COLUMN IF NOT EXISTS detected_format text, ADD COLUMN IF NOT EXISTS detected_encoding text")


def downgrade() -> None:
    op.execute("ALTER TABLE ops.file_registry DROP COLUMN IF EXISTS detected_format, DROP COLUMN IF EXISTS detected_encoding")
