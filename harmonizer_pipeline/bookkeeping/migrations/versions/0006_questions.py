"""ops.questions: every question asked in plain language (`harmonizer ask`, the job `ask`), the
SQL the model wrote, what became of it and the rows it returned; the turns of a session are its
rows with that session's name, which a follow-up question is asked with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """CREATE TABLE IF NOT EXISTS ops.questions (
            id bigserial PRIMARY KEY,
            asked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            asked_by text NOT NULL,
            session text,
            role text NOT NULL,
            question text NOT NULL,
            sql text,
            outcome text NOT NULL CHECK (outcome IN ('answered', 'refused', 'failed')),
            reason text,
            row_count bigint,
            truncated boolean
        )"""
    )
    op.execute("CREATE INDEX IF NOT EXISTS questions_session ON ops.questions (session, id) WHERE session IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ops.questions")
