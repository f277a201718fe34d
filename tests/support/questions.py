"""Labelled questions about the shipped collections, worded unlike the documents.

Each question names the collection its agent searches and the passage that
answers it: the document and the last heading of its section. Used by
tests/test_knowledge_retrieval.py (recall@5, reported in docs/knowledge.md).
"""

from __future__ import annotations

from typing import NamedTuple


class Question(NamedTuple):
    collection: str
    text: str
    document: str
    section: str  # the last heading of the answering section ("" for the top)


QUESTIONS = (
    # personal_finance (agent_alpha)
    Question(
        "personal_finance", "What exactly is a tracker fund?", "index-funds.md", "Index funds"
    ),
    Question(
        "personal_finance",
        "How much do yearly fund fees eat into my money over decades?",
        "index-funds.md",
        "Costs: the expense ratio",
    ),
    Question(
        "personal_finance",
        "Could a broad market fund lose a lot of value?",
        "index-funds.md",
        "Risks of index funds",
    ),
    Question(
        "personal_finance",
        "How many months of bills should my rainy-day savings cover?",
        "emergency-funds.md",
        "How much to save",
    ),
    Question(
        "personal_finance",
        "Should I keep my safety cushion in stocks or a savings account?",
        "emergency-funds.md",
        "Where to keep it",
    ),
    Question(
        "personal_finance",
        "Is a vacation a good reason to dip into my emergency savings?",
        "emergency-funds.md",
        "When to use it",
    ),
    Question(
        "personal_finance",
        "Why is owning only one company's shares dangerous?",
        "investment-risk.md",
        "Kinds of risk",
    ),
    Question(
        "personal_finance",
        "How do I know how much volatility I can stomach?",
        "investment-risk.md",
        "Risk tolerance and time horizon",
    ),
    Question(
        "personal_finance",
        "Which card should I clear first to pay the least interest?",
        "paying-off-debt.txt",
        "",
    ),
    Question(
        "personal_finance",
        "Is my company's pension match worth taking?",
        "retirement-accounts.html",
        "Employer plans and matching",
    ),
    # brand_guide (agent_beta)
    Question(
        "brand_guide",
        "What personality should our copy have?",
        "brand-voice.md",
        "Voice in three words",
    ),
    Question(
        "brand_guide",
        "How should we write an apology after an outage?",
        "brand-voice.md",
        "Tone by situation",
    ),
    Question(
        "brand_guide",
        "Which buzzwords are banned in our marketing?",
        "brand-voice.md",
        "Words we use and avoid",
    ),
    Question(
        "brand_guide",
        "Do we write colour or color?",
        "style-sheet.md",
        "Spelling and dates",
    ),
    Question(
        "brand_guide",
        "Should headlines use title case?",
        "style-sheet.md",
        "Capitalization and headlines",
    ),
    Question(
        "brand_guide",
        "How do we label a sponsored post?",
        "style-sheet.md",
        "Hashtags and disclosures",
    ),
    Question(
        "brand_guide",
        "How long can an Instagram caption be before it gets cut off?",
        "social-media-playbook.html",
        "Instagram",
    ),
    Question(
        "brand_guide",
        "What time of day should posts go out?",
        "social-media-playbook.html",
        "Posting schedule",
    ),
    # support_articles (agent_gamma)
    Question(
        "support_articles",
        "My laptop can't see any wireless networks, what should I check first?",
        "wifi-troubleshooting.md",
        "Quick checks",
    ),
    Question(
        "support_articles",
        "The internet is really sluggish at home",
        "wifi-troubleshooting.md",
        "Slow Wi-Fi",
    ),
    Question(
        "support_articles",
        "I can't remember my login credentials",
        "password-reset.md",
        "Reset it from the sign-in page",
    ),
    Question(
        "support_articles",
        "The reset email never arrived",
        "password-reset.md",
        "Didn't get the e-mail?",
    ),
    Question(
        "support_articles",
        "My account got locked after typing the wrong password several times",
        "password-reset.md",
        "Account locked after too many attempts",
    ),
    Question(
        "support_articles",
        "How do I get my new printer onto the wireless network?",
        "printer-setup.md",
        "Connect the printer to Wi-Fi",
    ),
    Question(
        "support_articles",
        "Windows says the printer is offline",
        "printer-setup.md",
        "Printer shows as offline",
    ),
    Question(
        "support_articles",
        "My notebook is dead and won't power up",
        "laptop-wont-start.txt",
        "",
    ),
    Question(
        "support_articles",
        "Does the guarantee cover a cracked screen from dropping it?",
        "warranty-and-repairs.pdf",
        "",
    ),
)
