# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py

.PHONY: run test venv dev-venv migrate seed serve worker beat lint check messages clean screenshots

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

dev-venv: $(BIN)/.installed-dev

migrate: venv
	$(MANAGE) migrate --noinput

seed: migrate
	$(MANAGE) seed_demo

## make run: install, migrate, load the demo data, serve on http://127.0.0.1:8000 (SQLite, tasks in-process)
run: seed
	$(MANAGE) runserver 127.0.0.1:8000

## make test: the whole suite (SQLite by default; DATABASE_URL / REDIS_URL switch to PostgreSQL / Redis)
test: dev-venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make screenshots: every admin page at 1440x900 on the demo data (Debian's chromium), PNGs in screenshots/
screenshots: dev-venv seed
	$(BIN)/python tests/browser/take_screenshots.py --out screenshots

## Celery worker and beat against REDIS_URL (see README)
worker: venv
	$(BIN)/celery -A portal worker --loglevel=INFO --concurrency=$${CELERY_CONCURRENCY:-2}

beat: venv
	$(BIN)/celery -A portal beat --loglevel=INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler

## Production settings behind gunicorn (needs DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL, REDIS_URL;
## see deploy/portal.env.example). Run `make migrate` first. WEB_CONCURRENCY workers (default 4).
serve: venv
	DJANGO_SETTINGS_MODULE=portal.settings.production $(MANAGE) collectstatic --noinput --verbosity 0
	DJANGO_SETTINGS_MODULE=portal.settings.production $(BIN)/gunicorn --config gunicorn.conf.py \
		--workers $${WEB_CONCURRENCY:-4} --bind $${GUNICORN_BIND:-127.0.0.1:8000}

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: dev-venv
	$(MANAGE) makemigrations --check --dry-run
	$(MANAGE) check

## make messages: refresh the catalogues from the sources and compile them (needs GNU gettext; see README "Languages").
## Keep the ignores in step with MAKEMESSAGES_IGNORE in .ci/check_translations.py.
MAKEMESSAGES_FLAGS := --all --no-obsolete --ignore=.venv --ignore=tests --ignore=bench --ignore=staticfiles --ignore=media --ignore=deploy
messages: venv
	$(MANAGE) makemessages $(MAKEMESSAGES_FLAGS)
	$(MANAGE) makemessages -d djangojs $(MAKEMESSAGES_FLAGS)
	$(MANAGE) compilemessages --ignore=.venv
	$(BIN)/python .ci/check_translations.py --skip-makemessages || true

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
