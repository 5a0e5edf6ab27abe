"""The packaged migrations form one line: helpers landing migrations side by side once left two
revisions on the same parent, and ``db upgrade`` then refuses to choose between the heads."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from sms_service.db.migrate import alembic_config


def test_the_migrations_have_exactly_one_head():
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(scripts.get_heads()) == 1, scripts.get_heads()


def test_every_revision_id_is_its_file_stem_and_unique():
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = list(scripts.walk_revisions())
    assert len({r.revision for r in revisions}) == len(revisions)
    for rev in revisions:
        stem = rev.path.rsplit("/", 1)[-1].removesuffix(".py")
        assert stem == rev.revision or stem.startswith(rev.revision + "_"), (stem, rev.revision)
