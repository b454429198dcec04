"""The study's TydiQA prompts, exactly: one item per language, with and without the passage, plain and chat.

The expected strings are written out below as the study's evaluation code (allenai/open-instruct
``eval/tydiqa/run_eval.py``, 2023) formats them: the instruction, a blank line, the shot (``Passage: ..``,
``Question: ..``, ``Answer: {first gold}``), a blank line, the item's passage and question and ``Answer:``,
each label in the language's own words as the study wrote them; questions and passages as the file gives
them (the English item's question has a space at each end, kept). Plain models see the text as it is;
chat models (its June 2023 code) ``"<|user|>\n" + text.strip() + "\n<|assistant|>\n" + answer label``.
Samples (two per language from three) and shots (one of two) are the study's draws: one
``random.Random(42)`` stream over the languages in name order, dev samples first, then the shots.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from camels.core.template import PlainFormat, TuluFormat
from camels.evals.task import RequestContext, get_task

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "tydiqa_all_languages"
PLAIN_FMT = PlainFormat(bos_token="<s>", eos_token="</s>", add_bos=False)
TULU = TuluFormat(bos_token="<s>", eos_token="</s>", add_bos=False)

STUDY_IDS = ["arabic--152-0",
             "arabic--150-0",
             "bengali--250-0",
             "bengali--251-0",
             "english--350-0",
             "english--352-0",
             "finnish--450-0",
             "finnish--452-0",
             "indonesian--552-0",
             "indonesian--550-0",
             "korean--652-0",
             "korean--651-0",
             "russian--750-0",
             "russian--752-0",
             "swahili--850-0",
             "swahili--852-0",
             "telugu--950-0",
             "telugu--952-0"]
STUDY_SHOTS = {"ar": "arabic--100-0", "bn": "bengali--201-0", "en": "english--300-0", "fi": "finnish--401-0",
               "id": "indonesian--501-0", "ko": "korean--600-0", "ru": "russian--700-0", "sw": "swahili--801-0",
               "te": "telugu--901-0"}

# (item id, closed book) -> (plain text, chat text)
GOLDEN = {
    ("arabic--152-0", False): (
        (
            "أجب على السؤال التالي بناءً على المعلومات في المقطع المعطى.\n"
            "\n"
            "المقطع: Arabic passage 0: the station opened in 1903 and serves 100 trains.\n"
            "السؤال: Arabic question 0: how many trains does the station serve?\n"
            "الإجابة: 100 trains\n"
            "\n"
            "المقطع: Arabic passage 2: the station opened in 1955 and serves 152 trains.\n"
            "السؤال: Arabic question 2: how many trains does the station serve?\n"
            "الإجابة:"
        ),
        (
            "<|user|>\n"
            "أجب على السؤال التالي بناءً على المعلومات في المقطع المعطى.\n"
            "\n"
            "المقطع: Arabic passage 0: the station opened in 1903 and serves 100 trains.\n"
            "السؤال: Arabic question 0: how many trains does the station serve?\n"
            "الإجابة: 100 trains\n"
            "\n"
            "المقطع: Arabic passage 2: the station opened in 1955 and serves 152 trains.\n"
            "السؤال: Arabic question 2: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "الإجابة:"
        ),
    ),
    ("bengali--250-0", False): (
        (
            "প্রদত্ত অধ্যায়ের তথ্যের উপর ভিত্তি করে নিম্নলিখিত প্রশ্নের উত্তর দিন।\n"
            "\n"
            "অধ্যায়: Bengali passage 1: the station opened in 1907 and serves 201 trains.\n"
            "প্রশ্ন: Bengali question 1: how many trains does the station serve?\n"
            "উত্তর: 201 trains\n"
            "\n"
            "অধ্যায়: Bengali passage 0: the station opened in 1956 and serves 250 trains.\n"
            "প্রশ্ন: Bengali question 0: how many trains does the station serve?\n"
            "উত্তর:"
        ),
        (
            "<|user|>\n"
            "প্রদত্ত অধ্যায়ের তথ্যের উপর ভিত্তি করে নিম্নলিখিত প্রশ্নের উত্তর দিন।\n"
            "\n"
            "অধ্যায়: Bengali passage 1: the station opened in 1907 and serves 201 trains.\n"
            "প্রশ্ন: Bengali question 1: how many trains does the station serve?\n"
            "উত্তর: 201 trains\n"
            "\n"
            "অধ্যায়: Bengali passage 0: the station opened in 1956 and serves 250 trains.\n"
            "প্রশ্ন: Bengali question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "উত্তর:"
        ),
    ),
    ("english--350-0", False): (
        (
            "Answer the following question based on the information in the given passage.\n"
            "\n"
            "Passage: English passage 0: the station opened in 1909 and serves 300 trains.\n"
            "Question: English question 0: how many trains does the station serve?\n"
            "Answer: 300 trains\n"
            "\n"
            "Passage: English passage 0: the station opened in 1959 and serves 350 trains.\n"
            "Question:  English question 0: how many trains does the station serve? \n"
            "Answer:"
        ),
        (
            "<|user|>\n"
            "Answer the following question based on the information in the given passage.\n"
            "\n"
            "Passage: English passage 0: the station opened in 1909 and serves 300 trains.\n"
            "Question: English question 0: how many trains does the station serve?\n"
            "Answer: 300 trains\n"
            "\n"
            "Passage: English passage 0: the station opened in 1959 and serves 350 trains.\n"
            "Question:  English question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Answer:"
        ),
    ),
    ("finnish--450-0", False): (
        (
            "Vastaa seuraavaan kysymykseen annetun kappaleen tiedon perusteella.\n"
            "\n"
            "Kappale: Finnish passage 1: the station opened in 1913 and serves 401 trains.\n"
            "Kysymys: Finnish question 1: how many trains does the station serve?\n"
            "Vastaus: 401 trains\n"
            "\n"
            "Kappale: Finnish passage 0: the station opened in 1962 and serves 450 trains.\n"
            "Kysymys: Finnish question 0: how many trains does the station serve?\n"
            "Vastaus:"
        ),
        (
            "<|user|>\n"
            "Vastaa seuraavaan kysymykseen annetun kappaleen tiedon perusteella.\n"
            "\n"
            "Kappale: Finnish passage 1: the station opened in 1913 and serves 401 trains.\n"
            "Kysymys: Finnish question 1: how many trains does the station serve?\n"
            "Vastaus: 401 trains\n"
            "\n"
            "Kappale: Finnish passage 0: the station opened in 1962 and serves 450 trains.\n"
            "Kysymys: Finnish question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Vastaus:"
        ),
    ),
    ("indonesian--552-0", False): (
        (
            "Jawab pertanyaan berikut berdasarkan informasi di bagian yang diberikan.\n"
            "\n"
            "Bagian: Indonesian passage 1: the station opened in 1916 and serves 501 trains.\n"
            "Pertanyaan: Indonesian question 1: how many trains does the station serve?\n"
            "Jawaban: 501 trains\n"
            "\n"
            "Bagian: Indonesian passage 2: the station opened in 1967 and serves 552 trains.\n"
            "Pertanyaan: Indonesian question 2: how many trains does the station serve?\n"
            "Jawaban:"
        ),
        (
            "<|user|>\n"
            "Jawab pertanyaan berikut berdasarkan informasi di bagian yang diberikan.\n"
            "\n"
            "Bagian: Indonesian passage 1: the station opened in 1916 and serves 501 trains.\n"
            "Pertanyaan: Indonesian question 1: how many trains does the station serve?\n"
            "Jawaban: 501 trains\n"
            "\n"
            "Bagian: Indonesian passage 2: the station opened in 1967 and serves 552 trains.\n"
            "Pertanyaan: Indonesian question 2: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Jawaban:"
        ),
    ),
    ("korean--652-0", False): (
        (
            "주어진 문단의 정보에 기반하여 다음 질문에 답하십시오.\n"
            "\n"
            "문단: Korean passage 0: the station opened in 1918 and serves 600 trains.\n"
            "질문: Korean question 0: how many trains does the station serve?\n"
            "답변: 600 trains\n"
            "\n"
            "문단: Korean passage 2: the station opened in 1970 and serves 652 trains.\n"
            "질문: Korean question 2: how many trains does the station serve?\n"
            "답변:"
        ),
        (
            "<|user|>\n"
            "주어진 문단의 정보에 기반하여 다음 질문에 답하십시오.\n"
            "\n"
            "문단: Korean passage 0: the station opened in 1918 and serves 600 trains.\n"
            "질문: Korean question 0: how many trains does the station serve?\n"
            "답변: 600 trains\n"
            "\n"
            "문단: Korean passage 2: the station opened in 1970 and serves 652 trains.\n"
            "질문: Korean question 2: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "답변:"
        ),
    ),
    ("russian--750-0", False): (
        (
            "Ответьте на следующий вопрос на основе информации в данном отрывке.\n"
            "\n"
            "Отрывок: Russian passage 0: the station opened in 1921 and serves 700 trains.\n"
            "Вопрос: Russian question 0: how many trains does the station serve?\n"
            "Ответ: 700 trains\n"
            "\n"
            "Отрывок: Russian passage 0: the station opened in 1971 and serves 750 trains.\n"
            "Вопрос: Russian question 0: how many trains does the station serve?\n"
            "Ответ:"
        ),
        (
            "<|user|>\n"
            "Ответьте на следующий вопрос на основе информации в данном отрывке.\n"
            "\n"
            "Отрывок: Russian passage 0: the station opened in 1921 and serves 700 trains.\n"
            "Вопрос: Russian question 0: how many trains does the station serve?\n"
            "Ответ: 700 trains\n"
            "\n"
            "Отрывок: Russian passage 0: the station opened in 1971 and serves 750 trains.\n"
            "Вопрос: Russian question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Ответ:"
        ),
    ),
    ("swahili--850-0", False): (
        (
            "Jibu swali lifuatalo kulingana na habari kwenye kifungu kilichotolewa.\n"
            "\n"
            "Kifungu: Swahili passage 1: the station opened in 1925 and serves 801 trains.\n"
            "Swali: Swahili question 1: how many trains does the station serve?\n"
            "Jibu: 801 trains\n"
            "\n"
            "Kifungu: Swahili passage 0: the station opened in 1974 and serves 850 trains.\n"
            "Swali: Swahili question 0: how many trains does the station serve?\n"
            "Jibu:"
        ),
        (
            "<|user|>\n"
            "Jibu swali lifuatalo kulingana na habari kwenye kifungu kilichotolewa.\n"
            "\n"
            "Kifungu: Swahili passage 1: the station opened in 1925 and serves 801 trains.\n"
            "Swali: Swahili question 1: how many trains does the station serve?\n"
            "Jibu: 801 trains\n"
            "\n"
            "Kifungu: Swahili passage 0: the station opened in 1974 and serves 850 trains.\n"
            "Swali: Swahili question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Jibu:"
        ),
    ),
    ("telugu--950-0", False): (
        (
            "ఇచ్చిన పేరాలోని సమాచారం ఆధారంగా కింది ప్రశ్నకు సమాధానం ఇవ్వండి.\n"
            "\n"
            "పేరా: Telugu passage 1: the station opened in 1928 and serves 901 trains.\n"
            "ప్రశ్న: Telugu question 1: how many trains does the station serve?\n"
            "సమాధానం: 901 trains\n"
            "\n"
            "పేరా: Telugu passage 0: the station opened in 1977 and serves 950 trains.\n"
            "ప్రశ్న: Telugu question 0: how many trains does the station serve?\n"
            "సమాధానం:"
        ),
        (
            "<|user|>\n"
            "ఇచ్చిన పేరాలోని సమాచారం ఆధారంగా కింది ప్రశ్నకు సమాధానం ఇవ్వండి.\n"
            "\n"
            "పేరా: Telugu passage 1: the station opened in 1928 and serves 901 trains.\n"
            "ప్రశ్న: Telugu question 1: how many trains does the station serve?\n"
            "సమాధానం: 901 trains\n"
            "\n"
            "పేరా: Telugu passage 0: the station opened in 1977 and serves 950 trains.\n"
            "ప్రశ్న: Telugu question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "సమాధానం:"
        ),
    ),
    ("arabic--152-0", True): (
        (
            "أجب على السؤال التالي.\n"
            "\n"
            "السؤال: Arabic question 0: how many trains does the station serve?\n"
            "الإجابة: 100 trains\n"
            "\n"
            "السؤال: Arabic question 2: how many trains does the station serve?\n"
            "الإجابة:"
        ),
        (
            "<|user|>\n"
            "أجب على السؤال التالي.\n"
            "\n"
            "السؤال: Arabic question 0: how many trains does the station serve?\n"
            "الإجابة: 100 trains\n"
            "\n"
            "السؤال: Arabic question 2: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "الإجابة:"
        ),
    ),
    ("bengali--250-0", True): (
        (
            "নিম্নলিখিত প্রশ্নের উত্তর দিন।\n"
            "\n"
            "প্রশ্ন: Bengali question 1: how many trains does the station serve?\n"
            "উত্তর: 201 trains\n"
            "\n"
            "প্রশ্ন: Bengali question 0: how many trains does the station serve?\n"
            "উত্তর:"
        ),
        (
            "<|user|>\n"
            "নিম্নলিখিত প্রশ্নের উত্তর দিন।\n"
            "\n"
            "প্রশ্ন: Bengali question 1: how many trains does the station serve?\n"
            "উত্তর: 201 trains\n"
            "\n"
            "প্রশ্ন: Bengali question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "উত্তর:"
        ),
    ),
    ("english--350-0", True): (
        (
            "Answer the following question.\n"
            "\n"
            "Question: English question 0: how many trains does the station serve?\n"
            "Answer: 300 trains\n"
            "\n"
            "Question:  English question 0: how many trains does the station serve? \n"
            "Answer:"
        ),
        (
            "<|user|>\n"
            "Answer the following question.\n"
            "\n"
            "Question: English question 0: how many trains does the station serve?\n"
            "Answer: 300 trains\n"
            "\n"
            "Question:  English question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Answer:"
        ),
    ),
    ("finnish--450-0", True): (
        (
            "Vastaa seuraavaan kysymykseen.\n"
            "\n"
            "Kysymys: Finnish question 1: how many trains does the station serve?\n"
            "Vastaus: 401 trains\n"
            "\n"
            "Kysymys: Finnish question 0: how many trains does the station serve?\n"
            "Vastaus:"
        ),
        (
            "<|user|>\n"
            "Vastaa seuraavaan kysymykseen.\n"
            "\n"
            "Kysymys: Finnish question 1: how many trains does the station serve?\n"
            "Vastaus: 401 trains\n"
            "\n"
            "Kysymys: Finnish question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Vastaus:"
        ),
    ),
    ("indonesian--552-0", True): (
        (
            "Jawab pertanyaan berikut.\n"
            "\n"
            "Pertanyaan: Indonesian question 1: how many trains does the station serve?\n"
            "Jawaban: 501 trains\n"
            "\n"
            "Pertanyaan: Indonesian question 2: how many trains does the station serve?\n"
            "Jawaban:"
        ),
        (
            "<|user|>\n"
            "Jawab pertanyaan berikut.\n"
            "\n"
            "Pertanyaan: Indonesian question 1: how many trains does the station serve?\n"
            "Jawaban: 501 trains\n"
            "\n"
            "Pertanyaan: Indonesian question 2: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Jawaban:"
        ),
    ),
    ("korean--652-0", True): (
        (
            "다음 질문에 답하십시오.\n"
            "\n"
            "질문: Korean question 0: how many trains does the station serve?\n"
            "답변: 600 trains\n"
            "\n"
            "질문: Korean question 2: how many trains does the station serve?\n"
            "답변:"
        ),
        (
            "<|user|>\n"
            "다음 질문에 답하십시오.\n"
            "\n"
            "질문: Korean question 0: how many trains does the station serve?\n"
            "답변: 600 trains\n"
            "\n"
            "질문: Korean question 2: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "답변:"
        ),
    ),
    ("russian--750-0", True): (
        (
            "Ответьте на следующий вопрос.\n"
            "\n"
            "Вопрос: Russian question 0: how many trains does the station serve?\n"
            "Ответ: 700 trains\n"
            "\n"
            "Вопрос: Russian question 0: how many trains does the station serve?\n"
            "Ответ:"
        ),
        (
            "<|user|>\n"
            "Ответьте на следующий вопрос.\n"
            "\n"
            "Вопрос: Russian question 0: how many trains does the station serve?\n"
            "Ответ: 700 trains\n"
            "\n"
            "Вопрос: Russian question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Ответ:"
        ),
    ),
    ("swahili--850-0", True): (
        (
            "Jibu swali lifuatalo.\n"
            "\n"
            "Swali: Swahili question 1: how many trains does the station serve?\n"
            "Jibu: 801 trains\n"
            "\n"
            "Swali: Swahili question 0: how many trains does the station serve?\n"
            "Jibu:"
        ),
        (
            "<|user|>\n"
            "Jibu swali lifuatalo.\n"
            "\n"
            "Swali: Swahili question 1: how many trains does the station serve?\n"
            "Jibu: 801 trains\n"
            "\n"
            "Swali: Swahili question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "Jibu:"
        ),
    ),
    ("telugu--950-0", True): (
        (
            "క్రింది ప్రశ్నకు సమాధానం ఇవ్వండి.\n"
            "\n"
            "ప్రశ్న: Telugu question 1: how many trains does the station serve?\n"
            "సమాధానం: 901 trains\n"
            "\n"
            "ప్రశ్న: Telugu question 0: how many trains does the station serve?\n"
            "సమాధానం:"
        ),
        (
            "<|user|>\n"
            "క్రింది ప్రశ్నకు సమాధానం ఇవ్వండి.\n"
            "\n"
            "ప్రశ్న: Telugu question 1: how many trains does the station serve?\n"
            "సమాధానం: 901 trains\n"
            "\n"
            "ప్రశ్న: Telugu question 0: how many trains does the station serve?\n"
            "<|assistant|>\n"
            "సమాధానం:"
        ),
    ),
}


def test_sample_and_shots_are_the_study_draws():
    task = get_task("tydiqa_goldp", n=2)
    assert [it.id for it in task.load(DATA).items] == STUDY_IDS
    assert {code: shot["id"] for code, shot in task.shots.items()} == STUDY_SHOTS
    # the rule itself, on the ids: one stream, languages by name, dev samples, then one shot each
    stream = random.Random(42)
    names = ["arabic", "bengali", "english", "finnish", "indonesian", "korean", "russian", "swahili", "telugu"]
    dev_ids = {n: [f"{n}--{(i + 1) * 100 + 50 + k}-0" for k in range(3)] for i, n in enumerate(names)}
    train_ids = {n: [f"{n}--{(i + 1) * 100 + k}-0" for k in range(2)] for i, n in enumerate(names)}
    drawn = [x for n in names for x in stream.sample(dev_ids[n], 2)]
    shots = [stream.sample(train_ids[n], 1)[0] for n in names]
    assert drawn == STUDY_IDS and shots == list(STUDY_SHOTS.values())


@pytest.mark.parametrize("closed_book", [False, True], ids=["goldp", "closed_book"])
def test_prompts_equal_the_study_text(closed_book):
    task = get_task("tydiqa_closed_book" if closed_book else "tydiqa_goldp", n=2)
    items = {it.id: it for it in task.load(DATA).items}
    checked = 0
    for (qid, closed), (plain, chat) in GOLDEN.items():
        if closed != closed_book:
            continue
        (req,) = task.requests(items[qid])
        assert PLAIN_FMT.prompt(req.messages, req.assistant_prefix) == plain, qid
        (creq,) = task.requests(items[qid], RequestContext(chat=True))
        assert TULU.prompt(creq.messages, creq.assistant_prefix) == chat, qid
        checked += 1
    assert checked == 9
